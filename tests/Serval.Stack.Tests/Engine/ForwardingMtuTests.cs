using Serval.Simulation;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// A service router adds its address to a first packet's SOURCE extension, so the packet grows on the way
/// (docs/engine.md, "Forwarding and the MTU"). Links of equal MTU on both sides of the router: every first packet the
/// sender accepts arrives, and one that would not fit is refused where it can be seen — by the sender, or by a router
/// with a counter — never lost at the far host.
/// </summary>
public sealed class ForwardingMtuTests
{
    private static readonly ServiceId Sink = ServiceId.FromName("mtu.sink");
    private static readonly ServiceId Me = ServiceId.FromName("mtu.sender");
    private const int Mtu = 1472;

    /// <summary>
    /// The largest payload of an unconnected datagram that fits a <see cref="Mtu"/>-byte link: SAL base header, the
    /// destination and source SERVICE extensions and the UDP header come first.
    /// </summary>
    private static readonly int LargestFirstPayload = Mtu - new SalPacketRepr
    {
        SourceFlow = new FlowId(1),
        Protocol = SalPacketRepr.ProtocolUdp,
        DestinationService = Sink,
        SourceService = Me,
        Udp = new UdpRepr { HasChecksum = true },
    }.GetLength(0);

    private sealed record Chain(SimulatedNetwork Net, SimLink[] Links, SimHost Client, SimHost[] Routers, SimHost Server, SocketHandle Sender, SocketHandle Receiver);

    /// <summary>client — router 1 — … — router n — server, one link per hop, every link with the same MTU.</summary>
    private static Chain Build(ulong seed, int routers, EngineOptions clientOptions)
    {
        var net = new SimulatedNetwork(seed);
        var conditions = new LinkConditions { Mtu = Mtu };
        var links = Enumerable.Range(0, routers + 1).Select(i => net.AddLink($"hop{i}", conditions)).ToArray();
        static LinkAddress Addr(int link, int host) => LinkAddress.FromIPv4(0x0A000000u | ((uint)link << 8) | (uint)host);

        var client = net.AddHost("client", clientOptions);
        var ci = client.Attach(links[0], Addr(0, 1));
        client.AddForward(ServicePrefix.Default, Addr(0, 254), ci);
        var hosts = new SimHost[routers];
        for (var r = 0; r < routers; r++)
        {
            hosts[r] = net.AddHost($"router{r + 1}", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
            hosts[r].Attach(links[r], Addr(r, 254));
            var egress = hosts[r].Attach(links[r + 1], Addr(r + 1, 1));
            hosts[r].AddForward(ServicePrefix.Exact(Sink), Addr(r + 1, 254), egress);
        }

        var server = net.AddHost("server");
        server.Attach(links[routers], Addr(routers, 254));
        var receiver = server.Do(e => e.BindDatagram(ServicePrefix.Exact(Sink), server.Now, out var h) == ServalError.None ? h : default);
        var sender = client.Do(e => e.BindDatagram(ServicePrefix.Exact(Me), client.Now, out var h) == ServalError.None ? h : default);
        return new Chain(net, links, client, hosts, server, sender, receiver);
    }

    /// <summary>Sends one datagram of every size around the link's limit; returns the sizes the sender accepted.</summary>
    private static List<int> SendAround(Chain c, int from, int to)
    {
        var accepted = new List<int>();
        for (var size = from; size <= to; size++)
        {
            var payload = new byte[size];
            BitConverter.TryWriteBytes(payload, size);
            var r = c.Client.Do(e => e.SendTo(c.Sender, Sink, payload, c.Client.Now));
            Assert.True(r is ServalError.None or ServalError.InvalidArgument, $"size {size}: {r}");
            if (r == ServalError.None)
            {
                accepted.Add(size);
            }
        }

        c.Net.RunFor(TimeSpan.FromSeconds(1));
        return accepted;
    }

    private static List<int> Received(Chain c)
    {
        var sizes = new List<int>();
        var buf = new byte[Mtu];
        while (c.Server.Engine.ReceiveFrom(c.Receiver, buf, out var n, out var from, out _) == ServalError.None)
        {
            Assert.Equal(Me, from);
            Assert.Equal(n, BitConverter.ToInt32(buf, 0));
            sizes.Add(n);
        }

        return sizes;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Every_datagram_the_sender_accepts_crosses_routers_on_links_of_equal_mtu(int routers)
    {
        var c = Build(31, routers, EngineOptions.Default);
        var accepted = SendAround(c, Mtu - 200, Mtu);

        // The sender refuses the 16 largest sizes that fit the link (room for two routers' SOURCE addresses over
        // IPv4: [client, router 1, router 2]); the rest all arrive.
        Assert.Equal(LargestFirstPayload - 16, accepted.Max());
        Assert.Equal(Enumerable.Range(Mtu - 200, accepted.Count), accepted);
        Assert.Equal(accepted, Received(c));
        Assert.All(c.Routers, r => Assert.Equal(0, r.Engine.Counters.ForwardTooBig));
        Assert.All(c.Links, l => Assert.Equal(0, l.Dropped));
        Assert.Equal(accepted.Count, c.Routers[^1].Engine.Counters.Forwarded);
    }

    [Fact]
    public void A_router_refuses_and_counts_a_packet_its_source_route_would_take_over_the_egress_mtu()
    {
        // A sender that reserves no room (as the reference does): its largest datagrams reach the router at the
        // link's MTU and would grow by the SOURCE extension.
        var c = Build(32, 1, EngineOptions.Default with { ReservedRouterHops = 0 });
        var accepted = SendAround(c, Mtu - 200, Mtu);
        var received = Received(c);
        var refused = c.Routers[0].Engine.Counters.ForwardTooBig;

        Assert.True(refused > 0, $"no datagram was refused at the router; accepted {accepted.Count} up to {accepted.DefaultIfEmpty().Max()}, received {received.Count}, dropped {c.Links[1].Dropped}");
        Assert.Equal(accepted.Count, received.Count + refused);
        Assert.Equal(LargestFirstPayload, accepted.Max());
        Assert.Equal(12, refused); // [client, router]: 12 bytes of SOURCE extension
        Assert.Equal(accepted.Take(accepted.Count - 12), received);
        Assert.All(c.Links, l => Assert.Equal(0, l.Dropped)); // nothing went onto a link it did not fit
    }

    [Fact]
    public void Past_the_reserved_hops_the_router_that_would_overflow_counts_the_refusal()
    {
        // Three routers, two reserved: the third router's address does not fit in the largest accepted datagrams.
        var c = Build(33, 3, EngineOptions.Default);
        var accepted = SendAround(c, Mtu - 200, Mtu);
        var received = Received(c);

        Assert.Equal(0, c.Routers[0].Engine.Counters.ForwardTooBig);
        Assert.Equal(0, c.Routers[1].Engine.Counters.ForwardTooBig);
        Assert.Equal(4, c.Routers[2].Engine.Counters.ForwardTooBig); // one IPv4 address: the 4 largest sizes
        Assert.Equal(accepted.Count - 4, received.Count);
        Assert.All(c.Links, l => Assert.Equal(0, l.Dropped));
    }

    [Fact]
    public void Reserved_router_hops_are_validated()
    {
        Assert.Throws<ArgumentException>(() => (EngineOptions.Default with { ReservedRouterHops = -1 }).Validate());
        Assert.Throws<ArgumentException>(() => (EngineOptions.Default with { ReservedRouterHops = 19 }).Validate());
        (EngineOptions.Default with { ReservedRouterHops = 18 }).Validate();
    }
}
