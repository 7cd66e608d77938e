using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Demo;

/// <summary>
/// Where replicas of a service are announced: here, straight into the router's service table as FORWARD rules with
/// weights. The service controller (registration with routers, leases) takes this role later; the demo only talks
/// to this class, so swapping it is the only change.
/// </summary>
internal sealed class ReplicaDirectory(ServalHost router)
{
    /// <summary>Announces a replica: new connections may reach it in proportion to <paramref name="weight"/>.</summary>
    public async ValueTask AddAsync(ServiceId service, LinkAddress replica, uint weight, CancellationToken cancellationToken)
    {
        try
        {
            await router.Admin.AddRuleAsync(ServicePrefix.Exact(service), router.Admin.ForwardTo(replica), weight: weight, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (ServalException e)
        {
            throw new InvalidOperationException($"Adding {replica} at the router: {e.Error}.", e);
        }
    }

    /// <summary>Withdraws a replica: no new connection reaches it; its existing connections are not affected.</summary>
    public async ValueTask RemoveAsync(ServiceId service, LinkAddress replica, CancellationToken cancellationToken)
    {
        try
        {
            await router.Admin.RemoveRuleAsync(ServicePrefix.Exact(service), router.Admin.ForwardTo(replica), cancellationToken).ConfigureAwait(false);
        }
        catch (ServalException e)
        {
            throw new InvalidOperationException($"Removing {replica} at the router: {e.Error}.", e);
        }
    }
}
