using Serval.Simulation;
using Serval.Stack.ControlPlane;
using Serval.Stack.Services;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>
/// On-demand resolution by asking the service routers (docs/control-protocol.md §9): a client with a default DELAY
/// rule asks its router where a service is (Resolve), installs the answer and sends its SYN straight to the replica.
/// </summary>
public sealed class RouterResolveTests
{
    private sealed class Setup
    {
        public required ControlTopology T { get; init; }

        public required ResolverController Resolver { get; init; }

        public List<(TimeSpan At, SimHost From, SalPacketRepr Packet)> Sent { get; } = [];
    }

    private static Setup Build(ulong seed, byte[]? key = null, Func<HostControllerOptions, HostControllerOptions>? host = null)
    {
        var t = ControlTopology.Build(seed, replicas: 1, key, host: host);
        var resolver = t.Client.Add(new ResolverController(t.Client.Host.Engine, new RouterServiceResolver(t.ClientController)));

        // Above the host controller's default rule toward the router (priority 10): unknown services are resolved first.
        Assert.Equal(ServiceTableResult.Ok, t.Client.Do(() => t.Client.Host.Engine.Services.Add(ServicePrefix.Default, ServiceTarget.Delay(), 20, 1)));
        var s = new Setup { T = t, Resolver = resolver };
        t.Lan.Observer = (at, from, _, _, packet) =>
        {
            if (SalPacketRepr.TryParse(packet, out var p, out _, out _, out _))
            {
                s.Sent.Add((at, from, p));
            }
        };
        return s;
    }

    [Fact]
    public void A_delayed_connect_asks_the_router_and_goes_straight_to_the_registered_replica()
    {
        var s = Build(51);
        var t = s.T;
        var listener = Listen(t.Replicas[0], Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50)); // registered
        Assert.Equal([t.ReplicaAddrs[0]], t.RouterTargets(Web));

        var c = t.Client.Do(() => t.Client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(c), TimeSpan.FromMilliseconds(100)));
        var syn = s.Sent.Single(x => x.From == t.Client.Host && x.Packet.DestinationService == Web && x.Packet.Control is { } ctl && ctl.Flags == Wire.SalControlFlags.Syn);
        Assert.Null(syn.Packet.SourceRoute); // not through the router
        Assert.Equal(1, t.RouterController.Counters.ResolveRequests);
        Assert.Equal(1, s.Resolver.Counters.Resolved);
        Assert.Equal(1, t.ClientController.Counters.Queries);

        // The answer is cached as a rule for the router's answer lifetime (5 s), then asked again.
        Assert.True(t.Client.Host.Engine.Services.TryGetExact(ServicePrefix.Exact(Web), out var entry));
        var rule = Assert.Single(entry.Rules);
        Assert.Equal(ServiceTarget.Forward(t.ReplicaAddrs[0], 1), rule.Target);
        Assert.Equal(TimeSpan.FromSeconds(5), rule.HardTimeout);
        var d = t.Client.Do(() => t.Client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(d), TimeSpan.FromMilliseconds(100)));
        Assert.Equal(1, t.RouterController.Counters.ResolveRequests);
        t.Net.RunFor(TimeSpan.FromSeconds(5));
        var e = t.Client.Do(() => t.Client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(e), TimeSpan.FromMilliseconds(100)));
        Assert.Equal(2, t.RouterController.Counters.ResolveRequests);
        t.Net.RunFor(TimeSpan.FromMilliseconds(10)); // the last handshake ACK reaches the replica
        Assert.Equal(3, Drain(t.Replicas[0], listener));
    }

    [Fact]
    public void An_unknown_service_fails_at_once_and_is_remembered_for_the_negative_lifetime()
    {
        var s = Build(52);
        var t = s.T;
        var nobody = ServiceId.FromName("nobody");
        var c = t.Client.Do(() => t.Client.Host.Connect(nobody));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.Engine.GetState(c) == SalState.Closed, TimeSpan.FromMilliseconds(100)));
        Assert.Equal(ServalError.NoRoute, t.Client.Host.Engine.GetError(c));
        Assert.Equal(1, t.RouterController.Counters.ResolveNotFound);

        // Within the router's negative lifetime (2 s) the client does not ask again.
        var d = t.Client.Do(() => t.Client.Host.Connect(nobody));
        Assert.Equal(SalState.Closed, t.Client.Host.Engine.GetState(d));
        Assert.Equal(1, s.Resolver.Counters.NegativeHits);
        Assert.Equal(1, t.RouterController.Counters.ResolveRequests);

        t.Net.RunFor(TimeSpan.FromSeconds(2));
        t.Client.Do(() => t.Client.Host.Connect(nobody));
        Assert.True(t.Net.RunUntil(() => t.RouterController.Counters.ResolveRequests == 2, TimeSpan.FromMilliseconds(100)));
    }

    [Fact]
    public void With_a_key_the_query_learns_the_epoch_from_a_stale_answer_and_is_answered()
    {
        // The client never registered anything: it does not know the router's epoch before its first query.
        var s = Build(53, Key);
        var t = s.T;
        Listen(t.Replicas[0], Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        var c = t.Client.Do(() => t.Client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(c), TimeSpan.FromMilliseconds(100)));
        Assert.Equal(1, t.ClientController.Counters.StaleAcks);
        Assert.Equal(1, t.RouterController.Counters.ResolveRequests);
    }

    [Fact]
    public void A_router_that_does_not_answer_is_asked_again_then_the_next_router_answers()
    {
        var dead = LinkAddress.Parse("10.0.0.253");
        var s = Build(54, host: o => o with { Routers = [new RouterEndpoint(dead, 1), .. o.Routers] });
        var t = s.T;
        Listen(t.Replicas[0], Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        var start = t.Net.Now;
        var c = t.Client.Do(() => t.Client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(c), TimeSpan.FromSeconds(2)));
        var resolvesToDead = s.Sent.Count(x => x.From == t.Client.Host && x.At >= start && x.Packet.DestinationService == ControlProtocol.RouterServiceId && x.Packet.SourceService is not null && x.At < t.Net.Now);
        Assert.Equal(3, resolvesToDead); // two to the dead router, one to the live one
        Assert.Equal(1, t.RouterController.Counters.ResolveRequests);
        Assert.InRange(t.Net.Now - start, TimeSpan.FromMilliseconds(750), TimeSpan.FromMilliseconds(850)); // 250 ms + 500 ms of retries, then a round trip
    }

    [Fact]
    public void No_router_answering_is_a_failure_that_is_not_remembered()
    {
        var s = Build(55);
        var t = s.T;
        t.Lan.Partitioned = true;
        var c = t.Client.Do(() => t.Client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.Engine.GetState(c) == SalState.Closed, TimeSpan.FromSeconds(2)));
        Assert.Equal(ServalError.NoRoute, t.Client.Host.Engine.GetError(c));
        Assert.Equal(1, t.ClientController.Counters.QueriesFailed);
        Assert.Equal(0, s.Resolver.NegativeCount);

        t.Lan.Partitioned = false;
        Listen(t.Replicas[0], Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1.5)); // the replica's registration gets through after its retries
        var d = t.Client.Do(() => t.Client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(d), TimeSpan.FromMilliseconds(100)));
    }

    private static int Drain(ControlNode node, SocketHandle listener)
    {
        var n = 0;
        while (node.Host.Engine.Accept(listener, out _) == ServalError.None)
        {
            n++;
        }

        return n;
    }
}
