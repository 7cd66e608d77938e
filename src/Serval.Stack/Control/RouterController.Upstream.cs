using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>Hierarchy: registering this router's prefixes, aggregated, with an upstream router.</summary>
public sealed partial class RouterController
{
    private readonly RegistrationClient? _upstream;
    private readonly Dictionary<ServicePrefix, Export> _exports = [];

    /// <summary>
    /// Moves a registration's contribution to the upstream exports after it was added, changed or removed. A
    /// registration counts toward the most specific configured aggregate containing it (or itself, with
    /// <see cref="RouterControllerOptions.ExportUncovered"/>) unless it is draining or gone; an export is registered
    /// upstream with the sum of its registrations' weights and withdrawn when the last one leaves.
    /// </summary>
    private void UpdateExport(Registration reg, TimeSpan now)
    {
        if (_upstream is null)
        {
            return;
        }

        var old = reg.Export;
        var next = reg.Removed || IsDraining(reg) ? null : ExportPrefixFor(reg.Prefix);
        if (old == next && reg.ExportWeight == (next is null ? 0 : reg.Weight))
        {
            return;
        }

        if (old is { } o && _exports.TryGetValue(o, out var before))
        {
            before.Count--;
            before.Weight -= reg.ExportWeight;
            if (before.Count == 0)
            {
                _exports.Remove(o);
                if (o != next)
                {
                    _upstream.Withdraw(o, now);
                }
            }
            else if (o != next)
            {
                Publish(o, before, now);
            }
        }

        reg.Export = next;
        reg.ExportWeight = next is null ? 0 : reg.Weight;
        if (next is { } n)
        {
            if (!_exports.TryGetValue(n, out var after))
            {
                after = new Export();
                _exports.Add(n, after);
            }

            after.Count++;
            after.Weight += reg.Weight;
            after.Transports |= reg.Transports;
            Publish(n, after, now);
        }
    }

    private void Publish(ServicePrefix prefix, Export export, TimeSpan now) =>
        _upstream!.Set(prefix, (uint)Math.Clamp(export.Weight, 1, ControlProtocol.MaxWeight), false, export.Transports, now);

    private ServicePrefix? ExportPrefixFor(ServicePrefix prefix)
    {
        ServicePrefix? best = null;
        foreach (var aggregate in _options.UpstreamAggregates)
        {
            if (aggregate.Contains(prefix) && (best is null || aggregate.Length > best.Value.Length))
            {
                best = aggregate;
            }
        }

        return best ?? (_options.ExportUncovered ? prefix : null);
    }

    /// <summary>One prefix registered upstream: how many registrations it stands for and their total weight.</summary>
    private sealed class Export
    {
        public int Count { get; set; }

        public long Weight { get; set; }

        public ServiceTransports Transports { get; set; }
    }
}
