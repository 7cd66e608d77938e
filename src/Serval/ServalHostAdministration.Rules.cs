using System.Text.Json.Nodes;
using Serval.Daemon.Protocol;
using Serval.Runtime;
using Serval.Stack.Services;

namespace Serval;

/// <summary>The service table: rules and their targets (docs/api.md, "Administration").</summary>
public sealed partial class ServalHostAdministration
{
    /// <summary>A FORWARD target to <paramref name="nextHop"/> on the host's first link of the same address family (attached: the daemon's links).</summary>
    /// <exception cref="ArgumentException">No link has that address family.</exception>
    public ServiceTarget ForwardTo(LinkAddress nextHop)
    {
        if (_host.Daemon is not { } daemon)
        {
            return _host.Driver.ForwardTarget(nextHop);
        }

        for (var i = 0; i < daemon.LinkAddresses.Count; i++)
        {
            if (daemon.LinkAddresses[i].Family == nextHop.Family)
            {
                return ServiceTarget.Forward(nextHop, i + 1);
            }
        }

        throw new ArgumentException($"No link of the daemon has the address family of {nextHop}.", nameof(nextHop));
    }

    /// <summary>
    /// Every rule of the service table with its counters (a consistent snapshot; no wait for the engine). Attached:
    /// the daemon's table, which blocks for one round trip to the daemon.
    /// </summary>
    /// <exception cref="ServalException">Attached, and the daemon went away.</exception>
    /// <exception cref="ObjectDisposedException">Attached, and the host was disposed.</exception>
    public IReadOnlyList<ServiceRuleInfo> GetRules()
    {
        if (_host.Daemon is { } daemon)
        {
            var reply = daemon.RequestAsync(new JsonObject { ["op"] = "rules.list" }, CancellationToken.None).GetAwaiter().GetResult();
            return DaemonProtocol.FromNode<ServiceRuleInfo[]>(reply["rules"]) ?? [];
        }

        return [.. _host.Driver.Engine.Services.Entries.SelectMany(e => e.Rules.Select(r => ServiceRuleInfo.From(e, r)))];
    }

    /// <summary>Adds a rule to the service table.</summary>
    /// <exception cref="ServalException">
    /// The prefix already has a rule with this target (<see cref="ServalError.AlreadyExists"/>), or the target,
    /// priority or weight is invalid (<see cref="ServalError.InvalidArgument"/>).
    /// </exception>
    public ValueTask AddRuleAsync(
        ServicePrefix prefix,
        ServiceTarget target,
        uint priority = ServiceTable.DefaultPriority,
        uint weight = ServiceTable.DefaultWeight,
        CancellationToken cancellationToken = default) =>
        RuleAsync("add", prefix, target, d => d.Engine.Services.Add(prefix, target, priority, weight, now: d.Now), cancellationToken, priority, weight);

    /// <summary>Removes the rule of <paramref name="prefix"/> whose target is <paramref name="target"/>.</summary>
    /// <exception cref="ServalException">No such rule (<see cref="ServalError.NotFound"/>), or the target is invalid (<see cref="ServalError.InvalidArgument"/>).</exception>
    public ValueTask RemoveRuleAsync(ServicePrefix prefix, ServiceTarget target, CancellationToken cancellationToken = default) =>
        RuleAsync("remove", prefix, target, d => d.Engine.Services.Remove(prefix, target), cancellationToken);

    /// <summary>Changes the priority and/or weight of a rule.</summary>
    /// <exception cref="ServalException">No such rule (<see cref="ServalError.NotFound"/>), or the priority or weight is out of range (<see cref="ServalError.InvalidArgument"/>).</exception>
    public ValueTask ModifyRuleAsync(
        ServicePrefix prefix,
        ServiceTarget target,
        uint? priority = null,
        uint? weight = null,
        CancellationToken cancellationToken = default) =>
        RuleAsync("modify", prefix, target, d => d.Engine.Services.Modify(prefix, target, priority: priority, weight: weight), cancellationToken, priority, weight);

    private async ValueTask RuleAsync(string operation, ServicePrefix prefix, ServiceTarget target, Func<EngineDriver, ServiceTableResult> change, CancellationToken cancellationToken, uint? priority = null, uint? weight = null)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_host.Daemon is { } daemon)
        {
            // The daemon replies with its own ServalException as an ERROR, which RequestAsync throws here.
            await daemon.RequestAsync(
                new JsonObject
                {
                    ["op"] = "rules.change",
                    ["change"] = operation,
                    ["prefix"] = prefix.ToString(),
                    ["target"] = DaemonProtocol.ToNode(target),
                    ["priority"] = priority,
                    ["weight"] = weight,
                },
                cancellationToken).ConfigureAwait(false);
            return;
        }

        var driver = _host.Driver;
        var result = await driver.InvokeAsync(change).WaitAsync(cancellationToken).ConfigureAwait(false);
        HostLog.RuleChanged(driver.Logger, _host.Name, operation, prefix, target, result);
        if (result != ServiceTableResult.Ok)
        {
            throw RuleException(result, prefix, target);
        }
    }

    /// <summary>The exception a failed service-table change reports.</summary>
    internal static ServalException RuleException(ServiceTableResult result, ServicePrefix prefix, ServiceTarget target) => result switch
    {
        ServiceTableResult.AlreadyExists => new ServalException(ServalError.AlreadyExists, $"A rule {prefix} -> {target} already exists."),
        ServiceTableResult.NotFound => new ServalException(ServalError.NotFound, $"No rule {prefix} -> {target}."),
        _ => new ServalException(ServalError.InvalidArgument, $"{result}: the rule {prefix} -> {target} was refused."),
    };
}
