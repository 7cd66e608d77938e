using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// Drives one engine ("us", 10.0.0.2) packet by packet while the test plays the peer (10.0.0.1):
/// <see cref="Send"/> a packet, <c>Expect</c> what the engine answers, <see cref="ExpectNothing"/>.
/// Time moves only through <see cref="Advance"/>.
/// </summary>
internal sealed class PacketHarness : IPacketSink
{
    public static readonly LinkAddress Us = LinkAddress.Parse("10.0.0.2");
    public static readonly LinkAddress Peer = LinkAddress.Parse("10.0.0.1");
    public static readonly ServiceId Service = ServiceId.FromNumber(16385);
    public static readonly Nonce PeerNonce = new(0x1111_2222_3333_4444);

    private readonly Queue<(LinkAddress Source, LinkAddress Destination, byte[] Packet)> _out = new();

    public PacketHarness(EngineOptions? options = null, ulong seed = 7)
    {
        Engine = new Stack.Engine(options ?? EngineOptions.Default, new SeededRandomSource(seed));
        Interface = Engine.AddInterface(new InterfaceConfig { Name = "eth0", Address = Us, Broadcast = LinkAddress.Parse("10.0.0.255"), Mtu = 1500 });
        Engine.SetInterfaceUp(Interface, true, Now);
        Engine.Services.Add(ServicePrefix.Default, ServiceTarget.Forward(Peer, Interface), 10, 1);
    }

    public Stack.Engine Engine { get; }

    public int Interface { get; }

    public TimeSpan Now { get; private set; } = TimeSpan.FromSeconds(1);

    public List<EngineEvent> Events { get; } = [];

    public void Advance(TimeSpan by)
    {
        Now += by;
        Poll();
    }

    public void Poll()
    {
        Engine.Poll(Now, this);
        while (Engine.TryGetEvent(out var e))
        {
            Events.Add(e);
        }
    }

    public void Send(SalPacketRepr packet, ReadOnlySpan<byte> payload = default, LinkAddress? from = null)
    {
        var src = from ?? Peer;
        var buf = new byte[2048];
        var n = packet.Emit(buf, payload, new TransportPseudoHeader(src, Us));
        Engine.Receive(Interface, src, Us, buf.AsSpan(0, n), Now);
        Poll();
    }

    public void SendRaw(byte[] bytes)
    {
        Engine.Receive(Interface, Peer, Us, bytes, Now);
        Poll();
    }

    public SalPacketRepr Expect(Func<SalPacketRepr, bool>? check = null, string? what = null) => Expect(out _, check, what);

    public SalPacketRepr Expect(out byte[] payload, Func<SalPacketRepr, bool>? check = null, string? what = null)
    {
        Assert.True(_out.Count > 0, $"expected a packet{(what is null ? string.Empty : $" ({what})")}, got nothing");
        var (src, dst, bytes) = _out.Dequeue();
        LastSource = src;
        Assert.True(SalPacketRepr.TryParse(bytes, out var p, out var off, out var len, out var error), error.ToString());
        Assert.True(SalPacketRepr.VerifyTransportChecksum(bytes, new TransportPseudoHeader(src, dst)), "transport checksum");
        payload = bytes.AsSpan(off, len).ToArray();
        if (check is not null)
        {
            Assert.True(check(p), $"unexpected packet{(what is null ? string.Empty : $" (wanted {what})")}: {SalPacketFormatter.Format(p, len)}");
        }

        return p;
    }

    /// <summary>The source address of the packet the last <c>Expect</c> took.</summary>
    public LinkAddress LastSource { get; private set; }

    public void ExpectNothing()
    {
        if (_out.Count > 0)
        {
            var (_, _, bytes) = _out.Peek();
            var text = SalPacketRepr.TryParse(bytes, out var p, out _, out var len, out var error) ? SalPacketFormatter.Format(p, len) : error.ToString();
            Assert.Fail($"expected no packet, got {text}");
        }
    }

    public void Drain() => _out.Clear();

    public int Pending => _out.Count;

    void IPacketSink.Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) =>
        _out.Enqueue((source, destination, packet.ToArray()));

    // ------------------------------------------------------------------------------------------------------
    // Packet templates (modify with `with { … }`)

    public static SalPacketRepr Control(SalControlFlags flags, uint verno, uint ackno, FlowId src, FlowId dst, Nonce? nonce = null, byte protocol = 17) => new()
    {
        SourceFlow = src,
        DestinationFlow = dst,
        Protocol = protocol,
        Control = new SalControl(flags, verno, ackno, nonce ?? PeerNonce),
        ControlOnly = true,
    };

    public static SalPacketRepr Syn(FlowId src, uint verno, byte protocol = 17, ServiceId? service = null) => new()
    {
        SourceFlow = src,
        Protocol = protocol,
        Control = new SalControl(SalControlFlags.Syn, verno, 0, PeerNonce),
        DestinationService = service ?? Service,
        Udp = new UdpRepr { HasChecksum = true },
        Tcp = new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = 1000, Window = 65535, MaxSegmentSize = 1400 },
    };

    public static SalPacketRepr Data(FlowId src, FlowId dst) => new()
    {
        SourceFlow = src,
        DestinationFlow = dst,
        Protocol = 17,
        Udp = new UdpRepr { HasChecksum = true },
    };

    // ------------------------------------------------------------------------------------------------------
    // Fixtures that put a datagram flow straight into a state

    public sealed record FlowFixture(SocketHandle Socket, FlowId Ours, FlowId Theirs, uint OurNext, uint TheirNext, Nonce OurNonce);

    /// <summary>A server-side connected datagram flow (we listened, the peer connected).</summary>
    public FlowFixture EstablishedFlow(uint peerVerno = 5000)
    {
        Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Datagram, 16, Now, out var listener);
        var peerFlow = new FlowId(77);
        Send(Syn(peerFlow, peerVerno));
        var synAck = Expect(p => p.Control is { } c && c.Flags == (SalControlFlags.Syn | SalControlFlags.Ack) && c.Ackno == peerVerno + 1, "SYN-ACK");
        var c = synAck.Control!.Value;
        Send(new SalPacketRepr
        {
            SourceFlow = peerFlow,
            DestinationFlow = synAck.SourceFlow,
            Protocol = 17,
            Control = new SalControl(SalControlFlags.Ack, peerVerno + 1, c.Verno + 1, PeerNonce),
            DestinationService = Service,
            Udp = new UdpRepr(),
        });
        ExpectNothing();
        Assert.Equal(ServalError.None, Engine.Accept(listener, out var conn));
        Assert.Equal(SalState.Connected, Engine.GetState(conn));
        return new FlowFixture(conn, synAck.SourceFlow, peerFlow, c.Verno + 1, peerVerno + 1, c.Nonce);
    }
}
