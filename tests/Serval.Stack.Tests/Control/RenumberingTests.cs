using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>
/// A registered replica's address is replaced (its interface removed, a new one added, as a host's link policy does
/// when the operating system renumbers it): its controller reaches the router over the new interface and registers
/// from the new address, the router moves the rule, and the replica's established flow follows on its own.
/// </summary>
public sealed class RenumberingTests
{
    [Fact]
    public void A_replica_whose_address_is_replaced_registers_from_the_new_one_and_its_flow_follows()
    {
        var t = Build(11, replicas: 1);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        var replica = t.Replicas[0];
        var controller = t.ReplicaControllers[0];
        var oldIface = t.ReplicaInterfaces[0];

        var c = t.Client.Do(() => t.Client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(c), TimeSpan.FromSeconds(1)));
        var s = t.Net.AcceptOne(replica.Host, listeners[0]);

        // The address goes: nothing reaches the router meanwhile, the rule stays until the lease ends.
        replica.Do(() => replica.Host.Remove(oldIface));
        t.Net.RunFor(TimeSpan.FromMilliseconds(500));
        Assert.Equal([t.ReplicaAddrs[0]], t.RouterTargets(Web));
        Assert.Equal(0, controller.Counters.InterfaceChanges);

        // A new address (a new interface: the old index is still the stranded flow's).
        var renumbered = LinkAddress.Parse("10.0.0.99");
        var iface = replica.Do(() => replica.Host.Attach(t.Lan, renumbered));
        Assert.NotEqual(oldIface, iface);
        Assert.True(t.Net.RunUntil(() => t.RouterTargets(Web) is [var only] && only == renumbered, TimeSpan.FromMilliseconds(100)));
        Assert.Equal(1, controller.Counters.InterfaceChanges);
        Assert.Equal(iface, controller.GetRouters()[0].Endpoint.Interface);
        Assert.Equal(1, t.RouterController.Counters.Moved);

        // The established flow moved by itself and carries data; new connections reach the new address.
        Assert.True(t.Net.RunUntil(() => t.Client.Host.Engine.GetFlow(c)!.PeerAddress == renumbered, TimeSpan.FromSeconds(1)));
        t.Exchange(replica, s, c, 256 * 1024);
        Assert.Equal(50, t.ConnectAll(Web, listeners, 50, TimeSpan.FromSeconds(10)).Sum());
        Assert.Equal(0, replica.Host.Engine.Counters.StrandedTimeouts);
    }

    [Fact]
    public void Without_flows_the_new_interface_takes_the_old_index_and_registration_follows_too()
    {
        var t = Build(12, replicas: 1);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        var replica = t.Replicas[0];
        replica.Do(() => replica.Host.Remove(t.ReplicaInterfaces[0]));
        var renumbered = LinkAddress.Parse("10.0.0.98");
        Assert.Equal(t.ReplicaInterfaces[0], replica.Do(() => replica.Host.Attach(t.Lan, renumbered)));
        Assert.True(t.Net.RunUntil(() => t.RouterTargets(Web) is [var only] && only == renumbered, TimeSpan.FromMilliseconds(100)));
        Assert.Equal(20, t.ConnectAll(Web, listeners, 20, TimeSpan.FromSeconds(10)).Sum());
    }
}
