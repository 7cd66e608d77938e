using Serval.Simulation;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// What a service router's forwarded first packet carries below the SAL (docs/protocol.md §8): the client's address as the
/// IP source (the pseudo-header source of its transport checksum), and the IP TTL / hop limit one lower than it
/// arrived with — dropped and counted when that would reach 0. And which receivers may accept a transport checksum
/// computed with SOURCE[0] rather than the link source: only interfaces whose link rewrites the source (UDP
/// encapsulation); on raw IP the checksum must verify against the IP header's source (docs/engine.md, "checksums").
/// </summary>
public sealed class ForwardedSourceTests
{
    private static readonly ServiceId Service = ServiceId.FromNumber(16385);
    private static readonly LinkAddress Client = LinkAddress.Parse("10.202.2.1");
    private static readonly LinkAddress RouterClientSide = LinkAddress.Parse("10.202.2.254");
    private static readonly LinkAddress RouterServerSide = LinkAddress.Parse("10.202.3.254");
    private static readonly LinkAddress Server = LinkAddress.Parse("10.202.3.1");
    private static readonly TimeSpan Now = TimeSpan.FromSeconds(1);

    private sealed record Sent(int Interface, LinkAddress Source, LinkAddress Destination, byte[] Packet, int HopLimit);

    private sealed class Sink : IPacketSink
    {
        public List<Sent> Packets { get; } = [];

        public void Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) =>
            Packets.Add(new Sent(interfaceIndex, source, destination, packet.ToArray(), hopLimit));
    }

    /// <summary>The client's TCP SYN for <see cref="Service"/>, with or without a SOURCE extension.</summary>
    private static SalPacketRepr Syn(SalSourceRoute? route) => new()
    {
        SourceFlow = new FlowId(2),
        Protocol = SalPacketRepr.ProtocolTcp,
        Control = new SalControl(SalControlFlags.Syn, 2144628919, 0, new Nonce(0x1f858e118807b222)),
        DestinationService = Service,
        SourceRoute = route,
        Tcp = new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = 2312052170, Window = 0, MaxSegmentSize = 1448, WindowScale = 1 },
    };

    private static byte[] Emit(SalPacketRepr repr, TransportPseudoHeader pseudoHeader)
    {
        var buffer = new byte[2048];
        var n = repr.Emit(buffer, default, pseudoHeader);
        Assert.True(n > 0);
        return buffer[..n];
    }

    /// <summary>A host listening for <see cref="Service"/> on one interface with <paramref name="address"/>.</summary>
    private static Stack.Engine ListeningServer(LinkAddress address, bool rewritesSource)
    {
        var engine = new Stack.Engine(EngineOptions.Default, new SeededRandomSource(3));
        var i = engine.AddInterface(new InterfaceConfig { Name = "eth0", Address = address, RewritesSource = rewritesSource, Mtu = 1480 });
        engine.SetInterfaceUp(i, true, Now);
        Assert.Equal(ServalError.None, engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Stream, 16, Now, out _));
        return engine;
    }

    private static bool IsSynAck(Sent s) =>
        SalPacketRepr.TryParse(s.Packet, out var p, out _, out _, out _) && p.Control is { } c && c.Flags == (SalControlFlags.Syn | SalControlFlags.Ack);

    [Fact]
    public void A_raw_ip_interface_rejects_a_SOURCE0_checksum_from_another_IP_source_and_a_rewriting_interface_accepts_it()
    {
        // The SYN as a service router forwards it: SOURCE [client, router], transport checksum over the pseudo-header
        // (client, server) — the IP source the router keeps.
        var forwarded = Emit(Syn(new SalSourceRoute([Client, RouterClientSide])), new TransportPseudoHeader(Client, Server));

        // Raw IP: the IP header the server sees says where the packet came from. A router that sent it from its own
        // address (the defect this guards against) produced a packet whose checksum does not verify: dropped.
        var raw = ListeningServer(Server, rewritesSource: false);
        var rawOut = new Sink();
        raw.Receive(1, RouterServerSide, Server, forwarded, 63, Now);
        raw.Poll(Now, rawOut);
        Assert.Equal(1, raw.Counters.BadTransportChecksum);
        Assert.Empty(rawOut.Packets);

        // The same packet with the client's IP source (what our router sends now) is answered, straight to the client.
        raw.Receive(1, Client, Server, forwarded, 63, Now);
        raw.Poll(Now, rawOut);
        Assert.Equal(1, raw.Counters.BadTransportChecksum);
        var synAck = Assert.Single(rawOut.Packets);
        Assert.True(IsSynAck(synAck));
        Assert.Equal(Client, synAck.Destination);
        Assert.Equal(Server, synAck.Source);

        // A link that rewrites the source (it delivers from the sending interface's own address whatever the router's
        // engine chose) cannot carry the client's address: there the SOURCE[0] pseudo-header is accepted.
        var rewriting = ListeningServer(Server, rewritesSource: true);
        var rewritingOut = new Sink();
        rewriting.Receive(1, RouterServerSide, Server, forwarded, IPHopLimit.Unknown, Now);
        rewriting.Poll(Now, rewritingOut);
        Assert.Equal(0, rewriting.Counters.BadTransportChecksum);
        Assert.True(IsSynAck(Assert.Single(rewritingOut.Packets)));

        // A packet whose checksum matches neither the link source nor SOURCE[0] is dropped there too.
        var damaged = (byte[])forwarded.Clone();
        damaged[^1] ^= 0x01; // last TCP option byte (window scale)
        rewriting.Receive(1, RouterServerSide, Server, damaged, IPHopLimit.Unknown, Now);
        rewriting.Poll(Now, rewritingOut);
        Assert.Equal(1, rewriting.Counters.BadTransportChecksum);
        Assert.Single(rewritingOut.Packets);
    }

    [Fact]
    public void A_udp_style_interface_accepts_the_forwarded_syn_from_the_routers_address()
    {
        // UDP encapsulation (addresses with ports, as UdpLink reports RewritesSource): the forwarded SYN arrives from
        // the router's socket; its transport checksum uses unspecified addresses (docs/nat-rebinding.md).
        var server = Server.WithPort(54325);
        var router = RouterServerSide.WithPort(54325);
        var forwarded = Emit(Syn(new SalSourceRoute([Client, RouterClientSide])), TransportPseudoHeader.ForLink(Client, server));
        var engine = ListeningServer(server, rewritesSource: true);
        var sink = new Sink();
        engine.Receive(1, router, server, forwarded, IPHopLimit.Unknown, Now);
        engine.Poll(Now, sink);
        Assert.Equal(0, engine.Counters.BadTransportChecksum);
        var synAck = Assert.Single(sink.Packets);
        Assert.True(IsSynAck(synAck));
        Assert.Equal(Client.WithPort(54325), synAck.Destination);
    }

    /// <summary>A service router: interface 1 towards the client, 2 towards the server, the service forwarded to the server.</summary>
    private static Stack.Engine Router(ServiceTarget? target = null)
    {
        var engine = new Stack.Engine(EngineOptions.Default with { Mode = EngineMode.ServiceRouter }, new SeededRandomSource(5));
        var a = engine.AddInterface(new InterfaceConfig { Name = "r1", Address = RouterClientSide, Mtu = 1480 });
        var b = engine.AddInterface(new InterfaceConfig { Name = "r2", Address = RouterServerSide, Mtu = 1480 });
        engine.SetInterfaceUp(a, true, Now);
        engine.SetInterfaceUp(b, true, Now);
        Assert.Equal(ServiceTableResult.Ok, engine.Services.Add(ServicePrefix.Exact(Service), target ?? ServiceTarget.Forward(Server, b), 10, 1));
        return engine;
    }

    private static byte[] ClientSyn() => Emit(Syn(null), new TransportPseudoHeader(Client, RouterClientSide));

    /// <summary>
    /// Checks the forwarded SYN as the reference router sends it (sr_syn_b.pcap frame 3): to the server on interface 2,
    /// from the client's address, SOURCE [client, router], transport checksum over (client, server).
    /// </summary>
    private static void AssertForwardedSyn(Sent sent)
    {
        Assert.Equal(2, sent.Interface);
        Assert.Equal(Client, sent.Source);
        Assert.Equal(Server, sent.Destination);
        Assert.True(SalPacketRepr.TryParse(sent.Packet, out var p, out _, out _, out _));
        Assert.Equal([Client, RouterClientSide], p.SourceRoute!.Addresses.ToArray());
        Assert.True(SalPacketRepr.VerifyTransportChecksum(sent.Packet, new TransportPseudoHeader(Client, Server)));
        Assert.False(SalPacketRepr.VerifyTransportChecksum(sent.Packet, new TransportPseudoHeader(RouterServerSide, Server)));
    }

    [Theory]
    [InlineData(64, 63)]
    [InlineData(255, 254)]
    [InlineData(2, 1)]
    [InlineData(IPHopLimit.Unknown, IPHopLimit.Unknown)] // e.g. received over UDP: the outgoing link's default
    public void The_router_forwards_from_the_clients_address_with_one_hop_less(int received, int forwarded)
    {
        var router = Router();
        var sink = new Sink();
        router.Receive(1, Client, RouterClientSide, ClientSyn(), received, Now);
        router.Poll(Now, sink);
        var sent = Assert.Single(sink.Packets);
        AssertForwardedSyn(sent);
        Assert.Equal(forwarded, sent.HopLimit);
        Assert.Equal(1, router.Counters.Forwarded);
        Assert.Equal(0, router.Counters.HopLimitExceeded);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(0)]
    public void The_router_drops_a_first_packet_whose_hop_limit_would_reach_zero_and_counts_it(int received)
    {
        var router = Router();
        var sink = new Sink();
        router.Receive(1, Client, RouterClientSide, ClientSyn(), received, Now);
        router.Poll(Now, sink);
        Assert.Empty(sink.Packets);
        Assert.Equal(1, router.Counters.HopLimitExceeded);
        Assert.Equal(0, router.Counters.Forwarded);
        Assert.Equal(0, router.Counters.NoRoute);
        Assert.Equal(1, router.Services.Counters.PacketsDropped);

        // The next SYN with hop limit to spare goes through.
        router.Receive(1, Client, RouterClientSide, ClientSyn(), 3, Now);
        router.Poll(Now, sink);
        Assert.Equal(2, Assert.Single(sink.Packets).HopLimit);
        Assert.Equal(1, router.Counters.HopLimitExceeded);
    }

    [Fact]
    public void A_delayed_first_packet_keeps_its_hop_limit_until_it_is_released()
    {
        var router = Router(ServiceTarget.Delay());
        var sink = new Sink();
        router.Receive(1, Client, RouterClientSide, ClientSyn(), 20, Now);
        router.Poll(Now, sink);
        Assert.Empty(sink.Packets);
        long id = 0;
        while (router.TryGetEvent(out var e))
        {
            if (e.Kind == EngineEventKind.PacketDelayed)
            {
                id = e.DelayedPacketId;
            }
        }

        Assert.NotEqual(0, id);
        Assert.Equal(ServiceTableResult.Ok, router.Services.Add(ServicePrefix.Exact(Service), ServiceTarget.Forward(Server, 2), 20, 1));
        Assert.True(router.ReleaseDelayed(id, Now));
        router.Poll(Now, sink);
        var sent = Assert.Single(sink.Packets);
        AssertForwardedSyn(sent);
        Assert.Equal(19, sent.HopLimit);
    }

    [Fact]
    public void Through_a_simulated_router_the_syn_arrives_from_the_client_one_hop_lower_and_the_connection_completes()
    {
        // Like raw IP, the simulated link carries the source and hop limit the sender's engine gave (64 by default).
        var net = new SimulatedNetwork(21);
        var lan = net.AddLink("lan");
        var client = net.AddHost("client");
        var router = net.AddHost("router", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
        var server = net.AddHost("server");
        var ci = client.Attach(lan, Client);
        var ri = router.Attach(lan, RouterClientSide);
        server.Attach(lan, Server);
        client.AddForward(ServicePrefix.Default, RouterClientSide, ci);
        router.AddForward(ServicePrefix.Exact(Service), Server, ri, 10, 1);
        var listener = server.Listen(Service);
        var fromRouter = new List<(LinkAddress Source, int HopLimit)>();
        LinkAddress lastSource = default;
        lan.Observer = (_, sender, source, _, _) => lastSource = source;
        lan.HopLimitObserver = (sender, hopLimit) =>
        {
            if (sender == router)
            {
                fromRouter.Add((lastSource, hopLimit));
            }
        };

        var c = client.Connect(Service);
        Assert.True(net.RunUntil(() => client.IsConnected(c), TimeSpan.FromSeconds(5)));
        net.AcceptOne(server, listener);
        Assert.Equal([(Client, IPHopLimit.Default - 1)], fromRouter);
        Assert.Equal(0, server.Engine.Counters.BadTransportChecksum);
        Assert.Equal(1, router.Engine.Counters.Forwarded);
    }
}
