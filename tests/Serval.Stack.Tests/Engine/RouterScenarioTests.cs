using Serval.Simulation;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>Client → service router → replicas, in the simulator (docs/protocol.md §7–8; paper §4.2).</summary>
public sealed class RouterScenarioTests
{
    private static readonly ServiceId Web = ServiceId.FromName("web");
    private static readonly LinkAddress ClientAddr = LinkAddress.Parse("10.0.0.1");
    private static readonly LinkAddress RouterAddr = LinkAddress.Parse("10.0.0.254");

    private sealed class Topology
    {
        public required SimulatedNetwork Net { get; init; }

        public required SimLink Lan { get; init; }

        public required SimHost Client { get; init; }

        public required SimHost Router { get; init; }

        public required SimHost[] Replicas { get; init; }

        public required LinkAddress[] ReplicaAddrs { get; init; }

        public required SocketHandle[] Listeners { get; init; }
    }

    private static Topology Build(ulong seed, uint[] weights, TransportProtocol protocol, LinkConditions? conditions = null)
    {
        var net = new SimulatedNetwork(seed);
        var lan = net.AddLink("lan", conditions);
        var client = net.AddHost("client");
        var router = net.AddHost("router", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
        var ci = client.Attach(lan, ClientAddr);
        var ri = router.Attach(lan, RouterAddr);
        client.AddForward(ServicePrefix.Default, RouterAddr, ci);
        var replicas = new SimHost[weights.Length];
        var addrs = new LinkAddress[weights.Length];
        var listeners = new SocketHandle[weights.Length];
        for (var i = 0; i < weights.Length; i++)
        {
            replicas[i] = net.AddHost($"replica{i}");
            addrs[i] = LinkAddress.FromIPv4(0x0A00000B + (uint)i);
            replicas[i].Attach(lan, addrs[i]);
            listeners[i] = replicas[i].Listen(Web, protocol, 4096);
            router.AddForward(ServicePrefix.Exact(Web), addrs[i], ri, 10, weights[i]);
        }

        return new Topology { Net = net, Lan = lan, Client = client, Router = router, Replicas = replicas, ReplicaAddrs = addrs, Listeners = listeners };
    }

    [Fact]
    public void Connections_spread_by_weight_and_synacks_go_straight_to_the_client()
    {
        var t = Build(11, [1, 1, 2], TransportProtocol.Datagram);
        var synAcksViaRouter = 0;
        var synAcksDirect = 0;
        var routerSentNonSyn = 0;
        t.Lan.Observer = (time, sender, src, dst, bytes) =>
        {
            if (!SalPacketRepr.TryParse(bytes, out var p, out _, out _, out _))
            {
                return;
            }

            if (p.Control is { } c && c.Has(SalControlFlags.Syn | SalControlFlags.Ack))
            {
                if (dst.SameAddress(ClientAddr) && sender != t.Router)
                {
                    synAcksDirect++;
                }
                else
                {
                    synAcksViaRouter++;
                }
            }

            if (sender == t.Router && !(p.Control is { } rc && rc.Flags == SalControlFlags.Syn))
            {
                routerSentNonSyn++;
            }
        };

        const int Connections = 2000;
        var clients = new List<SocketHandle>();
        for (var i = 0; i < Connections; i++)
        {
            clients.Add(t.Client.Connect(Web, TransportProtocol.Datagram));
        }

        Assert.True(t.Net.RunUntil(() => clients.All(c => t.Client.IsConnected(c)), TimeSpan.FromSeconds(30)));
        t.Net.RunFor(TimeSpan.FromMilliseconds(100)); // the handshake ACKs reach the replicas
        var counts = t.Replicas.Select((r, i) =>
        {
            var n = 0;
            while (r.Engine.Accept(t.Listeners[i], out _) == ServalError.None)
            {
                n++;
            }

            return n;
        }).ToArray();
        Assert.Equal(Connections, counts.Sum());

        // Expected shares 25% / 25% / 50%; with n = 2000 the standard deviation is about 1.1 percentage points.
        double Share(int i) => counts[i] / (double)Connections;
        Assert.InRange(Share(0), 0.25 - 0.04, 0.25 + 0.04);
        Assert.InRange(Share(1), 0.25 - 0.04, 0.25 + 0.04);
        Assert.InRange(Share(2), 0.50 - 0.04, 0.50 + 0.04);

        Assert.True(synAcksViaRouter == 0 && synAcksDirect == Connections, $"via router {synAcksViaRouter}, direct {synAcksDirect}, offered {t.Lan.Offered}");
        Assert.Equal(0, routerSentNonSyn);
        Assert.Equal(Connections, t.Router.Engine.Counters.Forwarded);
        Assert.Equal(0, t.Router.Engine.FlowCount);
    }

    [Fact]
    public void A_replica_that_unbinds_gets_no_new_connections_while_its_existing_flow_finishes()
    {
        var t = Build(12, [1, 1, 1], TransportProtocol.Stream);

        // The control plane's reaction to an unbind: the router drops that replica's rule (issue: controller).
        for (var i = 0; i < t.Replicas.Length; i++)
        {
            var index = i;
            t.Replicas[i].OnEvent = e =>
            {
                if (e.Kind == EngineEventKind.ServiceUnregistered)
                {
                    t.Router.Engine.Services.Remove(ServicePrefix.Exact(Web), ServiceTarget.Forward(t.ReplicaAddrs[index], 1));
                }
            };
        }

        // An existing connection to replica 0 (found by trying until one lands there).
        SocketHandle existing = default, served = default;
        for (var attempt = 0; attempt < 50 && served.IsNone; attempt++)
        {
            var c = t.Client.Connect(Web);
            Assert.True(t.Net.RunUntil(() => t.Client.IsConnected(c), TimeSpan.FromSeconds(5)));
            t.Net.RunFor(TimeSpan.FromMilliseconds(10));
            if (t.Replicas[0].Engine.Accept(t.Listeners[0], out var s) == ServalError.None)
            {
                existing = c;
                served = s;
            }
        }

        Assert.False(served.IsNone);
        t.Replicas[0].Do(e => e.Close(t.Listeners[0], t.Replicas[0].Now));

        // New connections avoid replica 0 at once.
        var fresh = Enumerable.Range(0, 200).Select(_ => t.Client.Connect(Web)).ToList();
        Assert.True(t.Net.RunUntil(() => fresh.All(c => t.Client.IsConnected(c)), TimeSpan.FromSeconds(10)));
        Assert.Equal(0, t.Replicas[0].Engine.PendingAccepts(t.Listeners[0]));
        Assert.Equal(1 + 0, t.Replicas[0].Engine.GetFlows().Count(f => f.State == SalState.Connected));

        // The existing flow still carries data both ways.
        var data = SimApp.RandomBytes(300_000, 5);
        var got = SimApp.Transfer(t.Net, t.Replicas[0], served, t.Client, existing, data, TimeSpan.FromSeconds(60));
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(got));
    }

    [Fact]
    public void Under_30_percent_loss_99_percent_of_1000_connections_establish()
    {
        var t = Build(13, [1, 1, 1], TransportProtocol.Datagram, LinkConditions.Perfect with { Loss = 0.30, Delay = TimeSpan.FromMilliseconds(5) });
        var clients = Enumerable.Range(0, 1000).Select(_ => t.Client.Connect(Web, TransportProtocol.Datagram)).ToList();
        t.Net.RunUntil(() => clients.All(c => t.Client.Engine.GetState(c) is SalState.Connected or SalState.Closed), TimeSpan.FromMinutes(30));
        var connected = clients.Count(c => t.Client.IsConnected(c));
        var failures = string.Join(", ", clients.Where(c => !t.Client.IsConnected(c)).GroupBy(c => (t.Client.Engine.GetState(c), t.Client.Engine.GetError(c))).Select(g => $"{g.Key}: {g.Count()}"));
        Assert.True(connected >= 990, $"{connected} of 1000 connected; others {failures}");
    }

    [Fact]
    public void Unconnected_datagrams_through_the_router_reach_a_replica_with_the_source_service()
    {
        var t = Build(14, [1, 1, 1], TransportProtocol.Stream);
        var sockets = t.Replicas.Select(r => r.Do(e => e.BindDatagram(ServicePrefix.Exact(Web), r.Now, out var h) == ServalError.None ? h : default)).ToArray();
        var me = ServiceId.FromName("sensor-17");
        var client = t.Client.Do(e => e.BindDatagram(ServicePrefix.Exact(me), t.Client.Now, out var h) == ServalError.None ? h : default);
        for (var i = 0; i < 300; i++)
        {
            Assert.Equal(ServalError.None, t.Client.Do(e => e.SendTo(client, Web, BitConverter.GetBytes(i), t.Client.Now)));
        }

        t.Net.RunFor(TimeSpan.FromSeconds(1));
        var received = new List<int>();
        var buf = new byte[16];
        for (var r = 0; r < t.Replicas.Length; r++)
        {
            while (t.Replicas[r].Engine.ReceiveFrom(sockets[r], buf, out var n, out var from, out _) == ServalError.None)
            {
                Assert.Equal(me, from);
                received.Add(BitConverter.ToInt32(buf, 0));
            }
        }

        Assert.Equal(Enumerable.Range(0, 300), received.Order());
        Assert.Equal(300, t.Router.Engine.Counters.Forwarded);
    }

    [Fact]
    public void Delay_rule_holds_the_syn_until_a_verdict_and_expired_packets_are_dropped_and_counted()
    {
        var t = Build(15, [1], TransportProtocol.Stream);
        var lazy = ServiceId.FromName("lazy");
        var ri = 1;
        Assert.Equal(ServiceTableResult.Ok, t.Router.Engine.Services.Add(ServicePrefix.Exact(lazy), ServiceTarget.Delay(), 10, 1));
        t.Replicas[0].Listen(lazy);

        long delayedId = 0;
        t.Router.OnEvent = e =>
        {
            if (e.Kind == EngineEventKind.PacketDelayed)
            {
                delayedId = e.DelayedPacketId;
            }
        };
        var c = t.Client.Connect(lazy);
        Assert.True(t.Net.RunUntil(() => delayedId != 0, TimeSpan.FromSeconds(1)));
        t.Net.RunFor(TimeSpan.FromMilliseconds(500));
        Assert.Equal(SalState.Request, t.Client.Engine.GetState(c));

        // The resolver installs a rule and releases the packet: the connection completes without a retransmission.
        t.Router.Engine.Services.Add(ServicePrefix.Exact(lazy), ServiceTarget.Forward(t.ReplicaAddrs[0], ri), 20, 1);
        t.Router.Do(e => e.ReleaseDelayed(delayedId, t.Router.Now));
        Assert.True(t.Net.RunUntil(() => t.Client.IsConnected(c), TimeSpan.FromMilliseconds(100)));

        // Without a verdict a delayed packet expires after 5 s and is counted.
        var never = ServiceId.FromName("never");
        t.Router.Engine.Services.Add(ServicePrefix.Exact(never), ServiceTarget.Delay(), 10, 1);
        var d = t.Client.Do(e => e.BindDatagram(null, t.Client.Now, out var h) == ServalError.None ? h : default);
        t.Client.Do(e => e.SendTo(d, never, "hello?"u8, t.Client.Now));
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        Assert.Equal(1, t.Router.Engine.DelayedCount);
        t.Net.RunFor(TimeSpan.FromSeconds(5));
        Assert.Equal(0, t.Router.Engine.DelayedCount);
        Assert.Equal(1, t.Router.Engine.Counters.DelayExpired);
    }

    [Fact]
    public void Ad_hoc_mode_finds_the_service_by_broadcast()
    {
        var net = new SimulatedNetwork(16);
        var lan = net.AddLink("lan");
        var a = net.AddHost("a");
        var b = net.AddHost("b");
        var c = net.AddHost("c");
        a.Attach(lan, LinkAddress.Parse("192.168.1.10"), broadcastDefaultRule: true);
        b.Attach(lan, LinkAddress.Parse("192.168.1.20"), broadcastDefaultRule: true);
        c.Attach(lan, LinkAddress.Parse("192.168.1.30"), broadcastDefaultRule: true);
        var listener = c.Listen(Web);
        var conn = a.Connect(Web);
        Assert.True(net.RunUntil(() => a.IsConnected(conn), TimeSpan.FromSeconds(2)));
        Assert.Equal(LinkAddress.Parse("192.168.1.30"), a.Engine.GetFlow(conn)!.PeerAddress);
        var server = net.AcceptOne(c, listener);
        var got = SimApp.Transfer(net, a, conn, c, server, SimApp.RandomBytes(50_000, 3), TimeSpan.FromSeconds(10));
        Assert.Equal(50_000, got.Length);
        Assert.Equal(0, b.Engine.FlowCount);
    }
}
