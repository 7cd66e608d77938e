using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// A resolver backed by a static map from prefixes to targets: a serviceID resolves to the targets of the longest
/// mapped prefix that contains it, and the rules are installed for that prefix. Not thread-safe: change it on the
/// engine's thread.
/// </summary>
public sealed class StaticServiceResolver : IServiceResolver
{
    private readonly Dictionary<ServicePrefix, List<ResolvedTarget>> _map = [];

    /// <summary>Lifetime given to every resolution (null: rules stay until removed).</summary>
    public TimeSpan? Lifetime { get; init; }

    /// <summary>Number of mapped prefixes.</summary>
    public int Count => _map.Count;

    /// <summary>Maps <paramref name="prefix"/> to one more target.</summary>
    /// <exception cref="ArgumentException">The target has no address, a negative interface or a weight outside 1 to 2³¹ − 1.</exception>
    public void Add(ServicePrefix prefix, ResolvedTarget target)
    {
        if (target.Address.IsNone || target.Interface < 0 || target.Weight is 0 or > ControlProtocol.MaxWeight)
        {
            throw new ArgumentException($"Invalid target {target}.", nameof(target));
        }

        if (!_map.TryGetValue(prefix, out var targets))
        {
            targets = [];
            _map.Add(prefix, targets);
        }

        targets.Add(target);
    }

    /// <summary>Removes every target of <paramref name="prefix"/>.</summary>
    public bool Remove(ServicePrefix prefix) => _map.Remove(prefix);

    /// <inheritdoc/>
    public ServiceResolution? Resolve(ServiceId service, TimeSpan now)
    {
        ServicePrefix? best = null;
        foreach (var prefix in _map.Keys)
        {
            if (prefix.Contains(service) && (best is null || prefix.Length > best.Value.Length))
            {
                best = prefix;
            }
        }

        return best is { } p ? new ServiceResolution(p, [.. _map[p]], Lifetime) : null;
    }
}
