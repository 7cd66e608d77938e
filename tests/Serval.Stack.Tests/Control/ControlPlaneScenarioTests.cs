using Serval.Stack.ControlPlane;
using Serval.Stack.Services;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>Hosts register their services with a service router, in the simulator (docs/design.md, "Control plane"; issue 7).</summary>
public sealed class ControlPlaneScenarioTests
{
    private static readonly ServiceId Api = ServiceId.FromName("api");

    [Fact]
    public void A_bound_service_becomes_reachable_through_the_router_with_no_manual_rule()
    {
        var t = Build(1, replicas: 3);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(20));

        Assert.Equal(Names(t.ReplicaAddrs), Names(t.RouterTargets(Web)));
        Assert.Equal(3, t.RouterController.RegistrationCount);
        Assert.All(t.ReplicaControllers, c => Assert.Equal(1, Assert.Single(c.GetRegistrations()).AcknowledgedBy));
        var registration = t.RouterController.GetRegistrations()[0];
        Assert.Equal(ServicePrefix.Exact(Web), registration.Prefix);
        Assert.Equal(ServiceTransports.Stream, registration.Transports);

        // The hosts' only rules are the ones their controllers installed: the default rule and the route to the router.
        Assert.True(t.Client.Host.Engine.Services.TryGetExact(ServicePrefix.Default, out var def));
        Assert.Equal(RouterAddr, Assert.Single(def.Rules).Target.Address);

        var accepted = t.ConnectAll(Web, listeners, 300, TimeSpan.FromSeconds(10));
        Assert.Equal(300, accepted.Sum());
        Assert.All(accepted, n => Assert.InRange(n, 60, 140));

        // Soft state: refreshes keep the registrations alive well past the lease.
        t.Net.RunFor(TimeSpan.FromSeconds(10));
        Assert.Equal(3, t.RouterTargets(Web).Count);
        Assert.Equal(0, t.RouterController.Counters.Expired);
        Assert.True(t.RouterController.Counters.Refreshed >= 3 * 9, $"refreshed {t.RouterController.Counters.Refreshed}");
    }

    [Fact]
    public void A_dead_replica_is_dropped_within_the_lease_and_1000_new_connections_all_succeed()
    {
        var t = Build(2, replicas: 3);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(2.5));
        Assert.Equal(3, t.RouterTargets(Web).Count);

        var killedAt = t.Net.Now;
        t.Replicas[0].Kill(t.ReplicaInterfaces[0]);
        Assert.True(t.Net.RunUntil(() => t.RouterTargets(Web).Count == 2, TimeSpan.FromSeconds(5)));
        var gone = t.Net.Now - killedAt;
        Assert.True(gone <= TimeSpan.FromSeconds(3), $"removed after {gone}");
        Assert.DoesNotContain(t.ReplicaAddrs[0], t.RouterTargets(Web));
        Assert.Equal(1, t.RouterController.Counters.Expired);

        var accepted = t.ConnectAll(Web, listeners, 1000, TimeSpan.FromSeconds(30));
        Assert.Equal(0, accepted[0]);
        Assert.Equal(1000, accepted[1] + accepted[2]);
    }

    [Fact]
    public void Closing_the_listener_unregisters_at_once()
    {
        var t = Build(3, replicas: 3);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1.5));

        var closedAt = t.Net.Now;
        t.Replicas[1].Do(() => t.Replicas[1].Host.Engine.Close(listeners[1], t.Replicas[1].Now));
        Assert.True(t.Net.RunUntil(() => t.RouterTargets(Web).Count == 2, TimeSpan.FromMilliseconds(100)));
        Assert.True(t.Net.Now - closedAt <= TimeSpan.FromMilliseconds(100));
        Assert.DoesNotContain(t.ReplicaAddrs[1], t.RouterTargets(Web));
        Assert.Equal(1, t.RouterController.Counters.Unregistered);
        Assert.Empty(t.ReplicaControllers[1].GetRegistrations());

        listeners[1] = SocketHandle.None;
        var accepted = t.ConnectAll(Web, listeners, 200, TimeSpan.FromSeconds(10));
        Assert.Equal(200, accepted[0] + accepted[2]);

        // Nothing comes back with later refreshes, and the unregistration was acknowledged (no retransmission).
        t.Net.RunFor(TimeSpan.FromSeconds(5));
        Assert.Equal(2, t.RouterTargets(Web).Count);
        Assert.Equal(0, t.RouterController.Counters.Expired);
    }

    [Fact]
    public void A_service_shared_by_a_stream_and_a_datagram_socket_stays_registered_until_both_close()
    {
        var t = Build(4, replicas: 1);
        var r = t.Replicas[0];
        var stream = Listen(r, Web);
        var datagram = r.Do(() => r.Host.Engine.BindDatagram(ServicePrefix.Exact(Web), r.Now, out var h) == ServalError.None ? h : default);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Equal(ServiceTransports.Stream | ServiceTransports.Datagram, Assert.Single(t.RouterController.GetRegistrations()).Transports);

        r.Do(() => r.Host.Engine.Close(stream, r.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Equal(ServiceTransports.Datagram, Assert.Single(t.RouterController.GetRegistrations()).Transports);
        Assert.Single(t.RouterTargets(Web));

        r.Do(() => r.Host.Engine.Close(datagram, r.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Empty(t.RouterTargets(Web));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void After_a_router_restart_every_registration_is_back_within_2_seconds(bool keyed)
    {
        var key = keyed ? Key : null;
        var t = Build(5, replicas: 3, key);
        var web = t.ListenAll(Web);
        var api = t.ListenAll(Api);
        t.Net.RunFor(TimeSpan.FromSeconds(2));
        Assert.Equal(6, t.RouterController.RegistrationCount);
        var oldEpoch = t.RouterController.Epoch;

        // The router process dies and a new one (empty table, new epoch) starts half a second later.
        t.Router.Kill(t.RouterInterface);
        t.Net.RunFor(TimeSpan.FromSeconds(0.5));
        t.StartRouter(key);
        var startedAt = t.Net.Now;
        Assert.NotEqual(oldEpoch, t.RouterController.Epoch);
        Assert.Empty(t.RouterTargets(Web));

        Assert.True(
            t.Net.RunUntil(() => t.RouterController.RegistrationCount == 6 && t.RouterTargets(Web).Count == 3 && t.RouterTargets(Api).Count == 3, TimeSpan.FromSeconds(2)),
            $"{t.RouterController.RegistrationCount} registrations back");
        Assert.True(t.Net.Now - startedAt <= TimeSpan.FromSeconds(2));
        Assert.All(t.ReplicaControllers, c => Assert.Equal(t.RouterController.Epoch, Assert.Single(c.GetRouters()).Epoch));
        Assert.All(t.ReplicaControllers, c => Assert.Equal(1, c.Counters.RouterRestarts));
        if (keyed)
        {
            Assert.True(t.RouterController.Counters.Stale >= 1);
        }

        Assert.Equal(200, t.ConnectAll(Web, web, 200, TimeSpan.FromSeconds(10)).Sum());
        Assert.Equal(200, t.ConnectAll(Api, api, 200, TimeSpan.FromSeconds(10)).Sum());
    }

    [Fact]
    public void An_address_change_moves_the_registration_to_the_new_address()
    {
        var t = Build(6, replicas: 2);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1));

        var moved = LinkAddress.Parse("10.0.0.77");
        t.Replicas[0].Host.ChangeAddress(t.ReplicaInterfaces[0], moved, t.Net.Now + TimeSpan.FromMilliseconds(10));
        Assert.True(t.Net.RunUntil(() => t.RouterTargets(Web).Contains(moved), TimeSpan.FromMilliseconds(100)));
        Assert.Equal(Names([moved, t.ReplicaAddrs[1]]), Names(t.RouterTargets(Web)));
        Assert.Equal(1, t.RouterController.Counters.Moved);
        Assert.Equal(1, t.ReplicaControllers[0].Counters.AddressChanges);

        var accepted = t.ConnectAll(Web, listeners, 200, TimeSpan.FromSeconds(10));
        Assert.Equal(200, accepted.Sum());
        Assert.InRange(accepted[0], 50, 150);
    }

    [Fact]
    public void A_draining_replica_gets_no_new_connections_while_its_existing_flow_continues()
    {
        var t = Build(7, replicas: 3);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1));

        // An existing connection served by replica 2.
        SocketHandle existing = default, served = default;
        for (var attempt = 0; attempt < 50 && served.IsNone; attempt++)
        {
            var c = t.Client.Do(() => t.Client.Host.Connect(Web));
            Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(c), TimeSpan.FromSeconds(5)));
            t.Net.RunFor(TimeSpan.FromMilliseconds(10));
            if (t.Replicas[2].Host.Engine.Accept(listeners[2], out var s) == ServalError.None)
            {
                (existing, served) = (c, s);
            }
        }

        Assert.False(served.IsNone);
        Assert.True(t.Replicas[2].Do(() => t.ReplicaControllers[2].SetDraining(ServicePrefix.Exact(Web), true, t.Net.Now)));
        Assert.True(t.Net.RunUntil(() => t.RouterTargets(Web).Count == 2, TimeSpan.FromMilliseconds(100)));
        Assert.Contains(t.RouterController.GetRegistrations(), r => r.Draining && r.Address == t.ReplicaAddrs[2]);

        var accepted = t.ConnectAll(Web, listeners, 1000, TimeSpan.FromSeconds(30));
        Assert.Equal(0, accepted[2]);
        Assert.Equal(1000, accepted[0] + accepted[1]);
        t.Exchange(t.Replicas[2], served, existing, 200_000);

        // Draining is soft state too: it survives refreshes, and undraining puts the rule back.
        t.Net.RunFor(TimeSpan.FromSeconds(5));
        Assert.Equal(3, t.RouterController.RegistrationCount);
        Assert.Equal(2, t.RouterTargets(Web).Count);
        Assert.True(t.Replicas[2].Do(() => t.ReplicaControllers[2].SetDraining(ServicePrefix.Exact(Web), false, t.Net.Now)));
        Assert.True(t.Net.RunUntil(() => t.RouterTargets(Web).Count == 3, TimeSpan.FromMilliseconds(100)));
    }

    [Fact]
    public void Weights_from_the_host_set_the_router_rule_weight()
    {
        var t = Build(8, replicas: 2);
        var listeners = t.ListenAll(Web);
        Assert.True(t.Replicas[1].Do(() => t.ReplicaControllers[1].SetWeight(ServicePrefix.Exact(Web), 3, t.Net.Now)));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.True(t.Router.Host.Engine.Services.TryGetExact(ServicePrefix.Exact(Web), out var entry));
        Assert.Equal(3u, entry.Rules.Single(r => r.Target.Address == t.ReplicaAddrs[1]).Weight);
        Assert.Equal(1u, entry.Rules.Single(r => r.Target.Address == t.ReplicaAddrs[0]).Weight);

        var accepted = t.ConnectAll(Web, listeners, 1000, TimeSpan.FromSeconds(30));
        Assert.InRange(accepted[1] / 1000.0, 0.75 - 0.05, 0.75 + 0.05);
        Assert.False(t.ReplicaControllers[1].SetWeight(ServicePrefix.Exact(Api), 3, t.Net.Now));
    }

    [Fact]
    public void A_router_that_does_not_answer_is_retried_until_it_does()
    {
        var t = Build(9, replicas: 1);
        t.Router.Kill(t.RouterInterface);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(3));
        var c = t.ReplicaControllers[0].Counters;
        Assert.InRange(c.Retransmissions, 3, 6); // 250 ms, 500 ms, then every second
        Assert.Equal(0, Assert.Single(t.ReplicaControllers[0].GetRegistrations()).AcknowledgedBy);

        t.StartRouter();
        Assert.True(t.Net.RunUntil(() => t.RouterTargets(Web).Count == 1, TimeSpan.FromSeconds(1.1)));
        t.Net.RunFor(TimeSpan.FromMilliseconds(10));
        Assert.Equal(1, Assert.Single(t.ReplicaControllers[0].GetRegistrations()).AcknowledgedBy);
        Assert.Equal(100, t.ConnectAll(Web, listeners, 100, TimeSpan.FromSeconds(10)).Sum());
    }

    [Fact]
    public void Stopping_a_host_controller_unregisters_everything_and_removes_its_rules()
    {
        var t = Build(10, replicas: 2);
        t.ListenAll(Web);
        t.ListenAll(Api);
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        Assert.Equal(4, t.RouterController.RegistrationCount);

        t.Replicas[0].Do(() => t.ReplicaControllers[0].Stop(t.Net.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(20));
        Assert.Equal(2, t.RouterController.RegistrationCount);
        Assert.DoesNotContain(t.RouterController.GetRegistrations(), r => r.Address == t.ReplicaAddrs[0]);
        Assert.False(t.Replicas[0].Host.Engine.Services.TryGetExact(ServicePrefix.Default, out _));
        Assert.False(t.Replicas[0].Host.Engine.Services.TryGetExact(ServicePrefix.Exact(ControlProtocol.RouterServiceId), out _));
    }

    [Fact]
    public void A_restarted_host_controller_registers_its_services_again()
    {
        var t = Build(14, replicas: 1);
        var r = t.Replicas[0];
        var controller = t.ReplicaControllers[0];
        Listen(r, Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        r.Do(() => controller.Stop(r.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Empty(t.RouterTargets(Web));

        Assert.Equal(ServalError.None, r.Do(() => controller.Start(r.Now)));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Single(t.RouterTargets(Web));
    }

    [Fact]
    public void An_unbind_lost_in_an_event_queue_overflow_is_still_unregistered()
    {
        var t = Build(15, replicas: 0);
        t.AddReplica(engine: EngineOptions.Default with { EventQueueCapacity = 16 });
        var r = t.Replicas[0];
        var listener = Listen(r, Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Single(t.RouterTargets(Web));

        // Close it, then bind and close twenty more services before the events are drained: the first ones are lost.
        r.Do(() =>
        {
            r.Host.Engine.Close(listener, r.Now);
            for (var i = 0; i < 20; i++)
            {
                r.Host.Engine.Listen(ServicePrefix.Exact(ServiceId.FromName($"s{i}")), TransportProtocol.Stream, 1, r.Now, out var h);
                r.Host.Engine.Close(h, r.Now);
            }
        });
        Assert.True(r.Host.Engine.Counters.EventsDropped > 0);
        Assert.True(t.Net.RunUntil(() => t.RouterTargets(Web).Count == 0, TimeSpan.FromSeconds(1.1)));
        Assert.Empty(t.ReplicaControllers[0].GetRegistrations());
    }

    [Fact]
    public void Registrations_go_to_every_configured_router()
    {
        var second = LinkAddress.Parse("10.0.0.253");
        var t = Build(11, replicas: 0);
        var other = t.Net.AddHost("router-b", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
        other.Attach(t.Lan, second);
        var otherNode = new ControlNode(t.Net, other);
        var otherController = otherNode.Add(new RouterController(other.Engine, RouterControllerOptions.Default, new SeededRandomSource(99)));
        otherNode.Do(() => otherController.Start(otherNode.Now));

        // Both routers listen on the well-known serviceID; the host reaches each through its own address.
        var options = HostOptions() with { Routers = [new RouterEndpoint(RouterAddr, 1), new RouterEndpoint(second, 1)] };
        t.AddReplica(options);
        t.AddReplica(options);
        t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(3));

        Assert.Equal(2, t.RouterTargets(Web).Count);
        Assert.True(other.Engine.Services.TryGetExact(ServicePrefix.Exact(Web), out var entry));
        Assert.Equal(2, entry.RuleCount);
        Assert.All(t.ReplicaControllers, c => Assert.Equal(2, Assert.Single(c.GetRegistrations()).AcknowledgedBy));
        Assert.All(t.ReplicaControllers[0].GetRouters(), r => Assert.NotEqual(0ul, r.Epoch));
        Assert.Equal(0, t.ReplicaControllers[0].Counters.Retransmissions);
    }

    [Fact]
    public void The_router_enforces_its_limits_and_minimum_prefix_length()
    {
        var t = Build(12, replicas: 3, router: o => o with { MaxRegistrations = 2 });
        t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(100));
        Assert.Equal(2, t.RouterController.RegistrationCount);
        Assert.True(t.RouterController.Counters.Rejected >= 1);
        Assert.Equal(1, t.ReplicaControllers.Sum(c => c.Counters.RejectedAcks));

        // A short prefix is refused (default minimum: 1 bit; here 8).
        var u = Build(13, replicas: 1, router: o => o with { MinPrefixLength = 8 });
        var r = u.Replicas[0];
        r.Do(() => r.Host.Engine.Listen(new ServicePrefix(Web, 4), TransportProtocol.Stream, 8, r.Now, out _));
        u.Net.RunFor(TimeSpan.FromMilliseconds(100));
        Assert.Equal(0, u.RouterController.RegistrationCount);
        Assert.Equal(1, u.RouterController.Counters.Rejected);
    }

    private static string[] Names(IEnumerable<LinkAddress> addresses) => [.. addresses.Select(a => a.ToString()).Order(StringComparer.Ordinal)];
}
