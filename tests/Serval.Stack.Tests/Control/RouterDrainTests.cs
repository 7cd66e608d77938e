using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>Drains set at the router (<see cref="RouterController.SetDraining"/>), in the simulator.</summary>
public sealed class RouterDrainTests
{
    private static readonly ServiceId Api = ServiceId.FromName("api");

    [Fact]
    public void A_host_drained_at_the_router_gets_no_new_connections_keeps_its_lease_and_comes_back_on_undrain()
    {
        var t = Build(11, replicas: 3);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        Assert.Equal(3, t.RouterTargets(Web).Count);

        Assert.True(t.Router.Do(() => t.RouterController.SetDraining(t.ReplicaAddrs[1], null, true, t.Net.Now)));
        Assert.False(t.Router.Do(() => t.RouterController.SetDraining(t.ReplicaAddrs[1], null, true, t.Net.Now)));
        Assert.DoesNotContain(t.ReplicaAddrs[1], t.RouterTargets(Web));
        var accepted = t.ConnectAll(Web, listeners, 300, TimeSpan.FromSeconds(30));
        Assert.Equal(0, accepted[1]);
        Assert.Equal(300, accepted[0] + accepted[2]);

        // Refreshes (several leases) neither drop the registration nor bring the rule back.
        t.Net.RunFor(TimeSpan.FromSeconds(10));
        Assert.Equal(3, t.RouterController.RegistrationCount);
        var drained = Assert.Single(t.RouterController.GetRegistrations(), r => r.Address == t.ReplicaAddrs[1]);
        Assert.True(drained.DrainedByRouter);
        Assert.False(drained.Draining);
        Assert.Equal(2, t.RouterTargets(Web).Count);
        Assert.Equal([(t.ReplicaAddrs[1], (ServicePrefix?)null)], t.RouterController.GetDrains());

        Assert.True(t.Router.Do(() => t.RouterController.SetDraining(t.ReplicaAddrs[1], null, false, t.Net.Now)));
        Assert.Contains(t.ReplicaAddrs[1], t.RouterTargets(Web));
        Assert.Empty(t.RouterController.GetDrains());
    }

    [Fact]
    public void A_drain_of_one_prefix_by_address_without_port_spares_the_hosts_other_prefixes_and_outlives_its_registrations()
    {
        var t = Build(12, replicas: 2);
        Listen(t.Replicas[0], Web);
        var api = Listen(t.Replicas[0], Api);
        t.Net.RunFor(TimeSpan.FromSeconds(1));

        var anyPort = t.ReplicaAddrs[0].WithPort(0);
        Assert.True(t.Router.Do(() => t.RouterController.SetDraining(anyPort, ServicePrefix.Exact(Api), true, t.Net.Now)));
        Assert.Empty(t.RouterTargets(Api));
        Assert.Contains(t.ReplicaAddrs[0], t.RouterTargets(Web));

        // The host withdraws and binds again: still drained.
        t.Replicas[0].Do(() => t.Replicas[0].Host.Engine.Close(api, t.Net.Now));
        Assert.True(t.Net.RunUntil(() => t.RouterController.GetRegistrations().All(r => r.Prefix != ServicePrefix.Exact(Api)), TimeSpan.FromSeconds(1)));
        Listen(t.Replicas[0], Api);
        Assert.True(t.Net.RunUntil(() => t.RouterController.GetRegistrations().Any(r => r.Prefix == ServicePrefix.Exact(Api)), TimeSpan.FromSeconds(1)));
        Assert.Empty(t.RouterTargets(Api));
        Assert.Throws<ArgumentException>(() => t.RouterController.SetDraining(LinkAddress.None, null, true, t.Net.Now));
    }
}
