using Serval.Simulation;
using Serval.Stack.ControlPlane;
using Serval.Stack.Services;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>
/// A packet held by a DELAY rule leaves the moment a rule that resolves its service appears, whoever adds the rule: a
/// resolver's answer, a registration at a service router, a control request or the API (both add through the engine's
/// thread and poll it, which is what <see cref="SimHost.Do"/> does). "The moment" is checked on virtual time: the held
/// packet is on the link at the same instant as the change that released it.
/// </summary>
public sealed class DelayReleaseTests
{
    private static readonly ServiceId Svc = ServiceId.FromName("ondemand.svc");
    private static readonly LinkAddress ServerAddr = LinkAddress.Parse("10.0.0.20");

    /// <summary>A client with only a default DELAY rule and a server on one LAN (1 ms one way).</summary>
    private sealed class Pair
    {
        public Pair(ulong seed)
        {
            Net = new SimulatedNetwork(seed);
            Lan = Net.AddLink("lan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) });
            Client = Net.AddHost("client");
            Server = Net.AddHost("server");
            ClientInterface = Client.Attach(Lan, ClientAddr);
            Server.Attach(Lan, ServerAddr);
            Assert.Equal(ServiceTableResult.Ok, Client.Engine.Services.Add(ServicePrefix.Default, ServiceTarget.Delay(), 20, 1));
            Lan.Observer = (at, host, _, _, packet) =>
            {
                if (SalPacketRepr.TryParse(packet, out var p, out var off, out var len, out _))
                {
                    Sent.Add((at, host, p, packet.AsSpan(off, len).ToArray()));
                }
            };
        }

        public SimulatedNetwork Net { get; }

        public SimLink Lan { get; }

        public SimHost Client { get; }

        public SimHost Server { get; }

        public int ClientInterface { get; }

        public List<(TimeSpan At, SimHost From, SalPacketRepr Packet, byte[] Payload)> Sent { get; } = [];

        public List<TimeSpan> SynsFrom(SimHost host, ServiceId service) =>
            [.. Sent.Where(s => s.From == host && s.Packet.Control is { } c && c.Flags.HasFlag(SalControlFlags.Syn) && !c.Flags.HasFlag(SalControlFlags.Ack) && s.Packet.DestinationService == service).Select(s => s.At)];
    }

    [Fact]
    public void A_held_syn_leaves_the_moment_a_forward_rule_is_added_on_the_engine_thread()
    {
        var t = new Pair(1);
        var listener = t.Server.Listen(Svc);
        var c = t.Client.Connect(Svc);
        Assert.Equal(1, t.Client.Engine.DelayedCount);

        // As in the report of issue 14: the rule is added 2.3 s into the hold (servalctl service add / AddRuleAsync).
        t.Net.RunFor(TimeSpan.FromMilliseconds(2300));
        Assert.Equal(SalState.Request, t.Client.Engine.GetState(c));
        Assert.Empty(t.SynsFrom(t.Client, Svc));
        var added = t.Net.Now;
        Assert.Equal(ServiceTableResult.Ok, t.Client.Do(e => e.Services.Add(ServicePrefix.Exact(Svc), ServiceTarget.Forward(ServerAddr, t.ClientInterface), now: added)));

        Assert.Equal([added], t.SynsFrom(t.Client, Svc));
        Assert.Equal(0, t.Client.Engine.DelayedCount);
        Assert.Equal(1, t.Client.Engine.Counters.DelayReleased);
        Assert.True(t.Net.RunUntil(() => t.Client.IsConnected(c), TimeSpan.FromMilliseconds(10)));
        var server = t.Net.AcceptOne(t.Server, listener);
        var data = SimApp.RandomBytes(20_000, 1);
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(SimApp.Transfer(t.Net, t.Client, c, t.Server, server, data, SimApp.Patience)));
        Assert.Single(t.SynsFrom(t.Client, Svc)); // released once; its retransmission timer restarted with it
    }

    [Fact]
    public void Held_datagrams_leave_in_arrival_order_the_moment_a_covering_rule_appears()
    {
        var t = new Pair(2);
        var prefix = new ServicePrefix(Svc, 24);
        var a = ServiceId.FromName(prefix, "a");
        var b = ServiceId.FromName(prefix, "b");
        var elsewhere = ServiceId.FromName("elsewhere");
        var rx = t.Server.Do(e => e.BindDatagram(prefix, t.Server.Now, out var h) == ServalError.None ? h : default);
        var tx = t.Client.Do(e => e.BindDatagram(null, t.Client.Now, out var h) == ServalError.None ? h : default);
        foreach (var (service, text) in new[] { (b, "1"), (elsewhere, "x"), (a, "2"), (b, "3") })
        {
            Assert.Equal(ServalError.None, t.Client.Do(e => e.SendTo(tx, service, System.Text.Encoding.ASCII.GetBytes(text), t.Client.Now)));
            t.Net.RunFor(TimeSpan.FromMilliseconds(10));
        }

        Assert.Equal(4, t.Client.Engine.DelayedCount);

        // A rule for an unrelated prefix releases nothing.
        t.Client.Do(e => e.Services.Add(ServicePrefix.Exact(ServiceId.FromName("unrelated")), ServiceTarget.Forward(ServerAddr, t.ClientInterface), now: t.Client.Now));
        Assert.Equal(4, t.Client.Engine.DelayedCount);

        var added = t.Net.Now;
        t.Client.Do(e => e.Services.Add(prefix, ServiceTarget.Forward(ServerAddr, t.ClientInterface), now: added));
        var released = t.Sent.Where(s => s.From == t.Client && s.Packet.DestinationService is { } d && prefix.Contains(d)).ToList();
        Assert.All(released, s => Assert.Equal(added, s.At));
        Assert.Equal(["1", "2", "3"], released.Select(s => System.Text.Encoding.ASCII.GetString(s.Payload)));
        Assert.Equal(1, t.Client.Engine.DelayedCount); // "elsewhere" still waits

        var got = new List<string>();
        var buffer = new byte[64];
        Assert.True(t.Net.RunUntil(
            () =>
            {
                while (t.Server.Engine.ReceiveFrom(rx, buffer, out var n, out _, out _) == ServalError.None)
                {
                    got.Add(System.Text.Encoding.ASCII.GetString(buffer, 0, n));
                }

                return got.Count == 3;
            },
            TimeSpan.FromMilliseconds(10)));
        Assert.Equal(["1", "2", "3"], got);
    }

    [Fact]
    public void A_more_specific_or_higher_priority_delay_rule_keeps_holding_and_removing_the_delay_rule_releases()
    {
        var t = new Pair(3);
        t.Server.Listen(Svc);
        t.Client.Do(e => e.Services.Add(ServicePrefix.Exact(Svc), ServiceTarget.Delay(), 50, 1));
        var c = t.Client.Connect(Svc);

        // Below the exact DELAY rule's priority: the top set is still DELAY, the SYN stays.
        t.Client.Do(e => e.Services.Add(ServicePrefix.Exact(Svc), ServiceTarget.Forward(ServerAddr, t.ClientInterface), 10, 1, now: t.Client.Now));
        t.Client.Do(e => e.Services.Add(new ServicePrefix(Svc, 8), ServiceTarget.Forward(ServerAddr, t.ClientInterface), 100, 1, now: t.Client.Now));
        Assert.Equal(1, t.Client.Engine.DelayedCount);
        Assert.Empty(t.SynsFrom(t.Client, Svc));

        // Removing the DELAY rule lets the FORWARD rule below it answer, at once.
        t.Net.RunFor(TimeSpan.FromMilliseconds(700));
        var removed = t.Net.Now;
        Assert.Equal(ServiceTableResult.Ok, t.Client.Do(e => e.Services.Remove(ServicePrefix.Exact(Svc), ServiceTarget.Delay())));
        Assert.Equal([removed], t.SynsFrom(t.Client, Svc));
        Assert.True(t.Net.RunUntil(() => t.Client.IsConnected(c), TimeSpan.FromMilliseconds(10)));
        t.Client.Do(e => e.Services.Remove(new ServicePrefix(Svc, 8), ServiceTarget.Forward(ServerAddr, t.ClientInterface)));

        // With nothing left to resolve it, a held connection fails at once (NoRoute) instead of waiting out its 5 s.
        var lone = ServiceId.FromName("lone");
        t.Client.Do(e => e.Services.Add(ServicePrefix.Exact(lone), ServiceTarget.Delay(), 50, 1));
        t.Client.Do(e => e.Services.Remove(ServicePrefix.Default, ServiceTarget.Delay()));
        var d = t.Client.Connect(lone);
        Assert.Equal(SalState.Request, t.Client.Engine.GetState(d));
        t.Client.Do(e => e.Services.Remove(ServicePrefix.Exact(lone), ServiceTarget.Delay()));
        Assert.Equal(SalState.Closed, t.Client.Engine.GetState(d));
        Assert.Equal(ServalError.NoRoute, t.Client.Engine.GetError(d));
    }

    [Fact]
    public void A_burst_of_changes_larger_than_the_queue_still_releases_exactly_the_resolvable_packets()
    {
        var t = new Pair(4);
        var tx = t.Client.Do(e => e.BindDatagram(null, t.Client.Now, out var h) == ServalError.None ? h : default);
        var services = Enumerable.Range(0, 8).Select(i => ServiceId.FromName($"burst{i}")).ToArray();
        foreach (var s in services)
        {
            t.Client.Do(e => e.SendTo(tx, s, "x"u8, t.Client.Now));
        }

        Assert.Equal(8, t.Client.Engine.DelayedCount);

        // 100 rule changes in one engine step (more than held packets + 16: the engine re-checks every held packet once).
        t.Client.Do(e =>
        {
            for (var i = 0; i < 100; i++)
            {
                e.Services.Add(ServicePrefix.Exact(ServiceId.FromName($"noise{i}")), ServiceTarget.Drop());
            }

            for (var i = 0; i < 8; i += 2)
            {
                e.Services.Add(ServicePrefix.Exact(services[i]), ServiceTarget.Forward(ServerAddr, t.ClientInterface), now: t.Client.Now);
            }
        });
        Assert.Equal(4, t.Client.Engine.DelayedCount);
        Assert.Equal(4, t.Client.Engine.Counters.DelayReleased);
        Assert.Equal(
            Enumerable.Range(0, 4).Select(i => services[2 * i]).ToArray(),
            t.Sent.Where(s => s.From == t.Client).Select(s => s.Packet.DestinationService!.Value).ToArray());
    }

    [Fact]
    public void A_drop_rule_appearing_drops_the_held_packet_at_once_and_without_a_change_a_packet_expires_after_its_lifetime()
    {
        var t = new Pair(5);
        var other = ServiceId.FromName("other");
        var tx = t.Client.Do(e => e.BindDatagram(null, t.Client.Now, out var h) == ServalError.None ? h : default);
        t.Client.Do(e => e.SendTo(tx, Svc, "x"u8, t.Client.Now));
        t.Client.Do(e => e.SendTo(tx, other, "y"u8, t.Client.Now));
        Assert.Equal(2, t.Client.Engine.DelayedCount);

        t.Client.Do(e => e.Services.Add(ServicePrefix.Exact(Svc), ServiceTarget.Drop()));
        Assert.Equal(1, t.Client.Engine.DelayedCount);
        Assert.True(t.Client.Engine.Services.TryGetExact(ServicePrefix.Exact(Svc), out var entry));
        Assert.Equal(1, entry.Rules.Single().Counters.PacketsDropped);

        // A rule that expires (a resolver's answer at the end of its lifetime) changes the table but resolves nothing.
        t.Client.Do(e => e.Services.Add(ServicePrefix.Exact(ServiceId.FromName("brief")), ServiceTarget.Forward(ServerAddr, t.ClientInterface), hardTimeout: TimeSpan.FromSeconds(1), now: t.Client.Now));
        t.Net.RunFor(TimeSpan.FromSeconds(2));
        Assert.Equal(1, t.Client.Engine.DelayedCount);
        t.Net.RunFor(TimeSpan.FromSeconds(4));
        Assert.Equal(0, t.Client.Engine.DelayedCount);
        Assert.Equal(1, t.Client.Engine.Counters.DelayExpired);
        Assert.Equal(1, t.Client.Engine.Counters.DelayReleased);
        Assert.DoesNotContain(t.Sent, s => s.From == t.Client);
    }

    [Fact]
    public void A_registration_at_a_router_forwards_the_syns_it_held_in_the_same_instant()
    {
        var t = ControlTopology.Build(6, replicas: 0);
        Assert.Equal(ServiceTableResult.Ok, t.Router.Do(() => t.Router.Host.Engine.Services.Add(ServicePrefix.Default, ServiceTarget.Delay(), 1, 1)));
        var offered = new List<(TimeSpan At, SimHost From, SalPacketRepr Packet, byte[] Payload)>();
        t.Lan.Observer = (at, host, _, _, packet) =>
        {
            if (SalPacketRepr.TryParse(packet, out var p, out var off, out var len, out _))
            {
                offered.Add((at, host, p, packet.AsSpan(off, len).ToArray()));
            }
        };

        var c = t.Client.Do(() => t.Client.Host.Connect(Web));
        t.Net.RunFor(TimeSpan.FromMilliseconds(1500)); // the SYN and its first retransmission wait at the router
        Assert.Equal(2, t.Router.Host.Engine.DelayedCount);
        Assert.Equal(SalState.Request, t.Client.Host.Engine.GetState(c));

        var replica = t.AddReplica();
        Listen(t.Replicas[replica], Web);
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(c), TimeSpan.FromMilliseconds(100)));
        var ack = offered.First(s => s.From == t.Router.Host && s.Packet.SourceService == ControlProtocol.RouterServiceId && s.Payload is [_, (byte)ControlMessageType.RegisterAck, ..]).At;
        var forwarded = offered.Where(s => s.From == t.Router.Host && s.Packet.DestinationService == Web && s.Packet.SourceRoute is not null).Select(s => s.At).ToList();
        Assert.Equal([ack, ack], forwarded);
        Assert.Equal(0, t.Router.Host.Engine.DelayedCount);
        Assert.Equal(2, t.Router.Host.Engine.Counters.DelayReleased);
    }

    [Fact]
    public void A_resolver_answer_for_a_prefix_also_releases_the_other_services_held_under_it()
    {
        var t = ControlTopology.Build(7, replicas: 0);
        var lazy = new ServicePrefix(ServiceId.FromName("lazy"), 16);
        t.AddReplica(HostOptions() with { Filter = p => !lazy.Contains(p) });
        var a = ServiceId.FromName(lazy, "a");
        var b = ServiceId.FromName(lazy, "b");
        Listen(t.Replicas[0], a);
        Listen(t.Replicas[0], b);
        var resolver = new CountingPendingResolver();
        var controller = t.Router.Add(new ResolverController(t.Router.Host.Engine, resolver));
        t.Router.Do(() => t.Router.Host.Engine.Services.Add(lazy, ServiceTarget.Delay(), 10, 1));

        var ca = t.Client.Do(() => t.Client.Host.Connect(a));
        var cb = t.Client.Do(() => t.Client.Host.Connect(b));
        Assert.True(t.Net.RunUntil(() => controller.PendingCount == 2, TimeSpan.FromMilliseconds(100)));
        t.Net.RunFor(TimeSpan.FromMilliseconds(400));

        // The answer for a covers the whole prefix: b's SYN leaves with a's, before b's own lookup is answered.
        var answered = t.Net.Now;
        var forwardedAt = new List<TimeSpan>();
        t.Lan.Observer = (at, host, _, _, packet) =>
        {
            if (host == t.Router.Host && SalPacketRepr.TryParse(packet, out var p, out _, out _, out _) && p.DestinationService is { } d && lazy.Contains(d))
            {
                forwardedAt.Add(at);
            }
        };
        Assert.True(t.Router.Do(() => controller.Complete(a, new ServiceResolution(lazy, [new ResolvedTarget(t.ReplicaAddrs[0], t.RouterInterface)]), t.Router.Now)));
        Assert.Equal([answered, answered], forwardedAt);
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(ca) && t.Client.Host.IsConnected(cb), TimeSpan.FromMilliseconds(100)));
        Assert.Equal(2, resolver.Calls);
        Assert.Equal(1, controller.Counters.Resolved);

        // b's lookup still ends; its answer finds nothing left to release and changes nothing.
        Assert.True(t.Router.Do(() => controller.Complete(b, null, t.Router.Now)));
        Assert.Equal(0, t.Router.Host.Engine.DelayedCount);
        Assert.True(t.Client.Host.IsConnected(cb));
    }

    private sealed class CountingPendingResolver : IServiceResolver
    {
        public int Calls { get; private set; }

        public ServiceResolution? Resolve(ServiceId service, TimeSpan now)
        {
            Calls++;
            return ServiceResolution.Pending;
        }
    }
}
