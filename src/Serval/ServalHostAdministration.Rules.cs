using Serval.Backends;
using Serval.Stack.Services;

namespace Serval;

/// <summary>The service table: rules and their targets (docs/api.md, "Administration").</summary>
public sealed partial class ServalHostAdministration
{
    /// <summary>A FORWARD target to <paramref name="nextHop"/> on the host's first link of the same address family (attached: the daemon's links).</summary>
    /// <exception cref="ArgumentException">No link has that address family.</exception>
    public ServiceTarget ForwardTo(LinkAddress nextHop) => _host.Backend.ForwardTo(nextHop);

    /// <summary>
    /// Every rule of the service table with its counters (a consistent snapshot; no wait for the engine). Attached:
    /// the daemon's table, which blocks for one round trip to the daemon.
    /// </summary>
    /// <exception cref="ServalException">Attached, and the daemon went away.</exception>
    /// <exception cref="ObjectDisposedException">Attached, and the host was disposed.</exception>
    public IReadOnlyList<ServiceRuleInfo> GetRules() => _host.Backend.GetRules();

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
        RuleAsync(RuleChange.Add, prefix, target, priority, weight, cancellationToken);

    /// <summary>Removes the rule of <paramref name="prefix"/> whose target is <paramref name="target"/>.</summary>
    /// <exception cref="ServalException">No such rule (<see cref="ServalError.NotFound"/>), or the target is invalid (<see cref="ServalError.InvalidArgument"/>).</exception>
    public ValueTask RemoveRuleAsync(ServicePrefix prefix, ServiceTarget target, CancellationToken cancellationToken = default) =>
        RuleAsync(RuleChange.Remove, prefix, target, null, null, cancellationToken);

    /// <summary>Changes the priority and/or weight of a rule.</summary>
    /// <exception cref="ServalException">No such rule (<see cref="ServalError.NotFound"/>), or the priority or weight is out of range (<see cref="ServalError.InvalidArgument"/>).</exception>
    public ValueTask ModifyRuleAsync(
        ServicePrefix prefix,
        ServiceTarget target,
        uint? priority = null,
        uint? weight = null,
        CancellationToken cancellationToken = default) =>
        RuleAsync(RuleChange.Modify, prefix, target, priority, weight, cancellationToken);

    private async ValueTask RuleAsync(RuleChange change, ServicePrefix prefix, ServiceTarget target, uint? priority, uint? weight, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await _host.Backend.ChangeRuleAsync(change, prefix, target, priority, weight, cancellationToken).ConfigureAwait(false);
    }
}
