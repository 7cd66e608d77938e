using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// The peer of a <see cref="PacketHarness"/> engine, played by hand the way the reference implementation behaves
/// (docs/protocol.md §9, TestData/tcp_basic.pcap): its TCP offers MSS 1448 and window scale 1 only, sends
/// window 0 in its SYN and 1408-byte data segments, and acknowledges cumulatively; its application learns of the end of
/// the stream only from our SAL FIN; it sends its own SAL FIN once its transport FIN is acknowledged. The test performs
/// each of those steps itself; this class keeps the peer's sequence numbers, builds its packets, and records every
/// packet either way for <see cref="CloseTrace"/>. Its vernos and sequence numbers start just below 2^32, so the
/// arithmetic the test checks wraps.
/// </summary>
internal sealed class ReferenceLikePeer(PacketHarness h, bool isClient)
{
    /// <summary>The reference's full data segment.</summary>
    public const int SegmentSize = 1408;

    /// <summary>The window the peer advertises after its SYN (scaled by 2).</summary>
    public const ushort Window = 30000;

    public bool IsClient { get; } = isClient;

    /// <summary>The peer's flowID (the reference numbers them: client 2, server child 3).</summary>
    public FlowId Flow { get; } = new(isClient ? 2u : 3u);

    public FlowId OurFlow { get; private set; }

    public uint SalIss { get; } = isClient ? 0xFFFF_FFFEu : 0xFFFF_FFFDu;

    public uint TcpIss { get; } = isClient ? 0xFFFF_FF00u : 0xFFFF_FA00u;

    /// <summary>The peer's next verno (its snd_nxt).</summary>
    public uint SalNxt { get; set; }

    /// <summary>The next verno the peer expects from us (its rcv_nxt; the ackno of everything it sends).</summary>
    public uint SalRcvNxt { get; set; }

    public uint TcpNxt { get; set; }

    public uint TcpRcvNxt { get; set; }

    public uint OurSalIss { get; private set; }

    public uint OurTcpIss { get; private set; }

    /// <summary>The stream bytes the peer received from us, in order.</summary>
    public List<byte> Received { get; } = [];

    public bool TransportFinReceived { get; private set; }

    /// <summary>Every packet either way, for <see cref="CloseTrace"/>.</summary>
    public List<(bool FromClient, SalPacketRepr P, int PayloadLength)> Trace { get; } = [];

    public void Send(SalPacketRepr p, ReadOnlySpan<byte> payload = default)
    {
        Trace.Add((IsClient, p, payload.Length));
        h.Send(p, payload);
    }

    public SalPacketRepr Expect(Func<SalPacketRepr, bool> check, string what) => Expect(out _, check, what);

    public SalPacketRepr Expect(out byte[] payload, Func<SalPacketRepr, bool> check, string what)
    {
        var p = h.Expect(out payload, check, what);
        Trace.Add((!IsClient, p, payload.Length));
        return p;
    }

    /// <summary>A transport segment at the peer's current sequence and acknowledgement numbers.</summary>
    public SalPacketRepr Tcp(TcpFlags flags) => new()
    {
        SourceFlow = Flow,
        DestinationFlow = OurFlow,
        Protocol = SalPacketRepr.ProtocolTcp,
        Tcp = new TcpRepr { SequenceNumber = TcpNxt, AckNumber = TcpRcvNxt, Flags = flags, Window = Window },
    };

    /// <summary>A control-only SAL packet at the peer's current verno and ackno.</summary>
    public SalPacketRepr Control(SalControlFlags flags) =>
        PacketHarness.Control(flags, SalNxt, SalRcvNxt, Flow, OurFlow, protocol: SalPacketRepr.ProtocolTcp);

    /// <summary>Client role: the handshake to our listener, as in frames 3–5 of tcp_basic.pcap; returns the accepted socket.</summary>
    public SocketHandle Connect(SocketHandle listener)
    {
        Send(new SalPacketRepr
        {
            SourceFlow = Flow,
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Syn, SalIss, 0, PacketHarness.PeerNonce),
            DestinationService = PacketHarness.Service,
            Tcp = new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = TcpIss, Window = 0, MaxSegmentSize = 1448, WindowScale = 1 },
        });
        SalNxt = SalIss + 1;
        TcpNxt = TcpIss + 1;
        var synAck = Expect(
            p => p.Control is { } c && c.Flags == (SalControlFlags.Syn | SalControlFlags.Ack) && c.Ackno == SalNxt
                && p.Tcp.Flags == (TcpFlags.Syn | TcpFlags.Ack) && p.Tcp.AckNumber == TcpNxt,
            "SYN-ACK");
        OurFlow = synAck.SourceFlow;
        OurSalIss = synAck.Control!.Value.Verno;
        OurTcpIss = synAck.Tcp.SequenceNumber;
        SalRcvNxt = OurSalIss + 1;
        TcpRcvNxt = OurTcpIss + 1;
        Send(Tcp(TcpFlags.Ack) with
        {
            Control = new SalControl(SalControlFlags.Ack, SalNxt, SalRcvNxt, PacketHarness.PeerNonce),
            DestinationService = PacketHarness.Service,
        });
        h.ExpectNothing();
        Assert.Equal(ServalError.None, h.Engine.Accept(listener, out var socket));
        return socket;
    }

    /// <summary>Server role: answers our SYN (already sent) as in frame 4 and takes our handshake ACK (frame 5).</summary>
    public void Answer()
    {
        var syn = Expect(p => p.Control is { } c && c.Flags == SalControlFlags.Syn && p.DestinationService == PacketHarness.Service, "our SYN");
        OurFlow = syn.SourceFlow;
        OurSalIss = syn.Control!.Value.Verno;
        OurTcpIss = syn.Tcp.SequenceNumber;
        SalRcvNxt = OurSalIss + 1;
        TcpRcvNxt = OurTcpIss + 1;
        SalNxt = SalIss;
        TcpNxt = TcpIss;
        Send(Tcp(TcpFlags.Syn | TcpFlags.Ack) with
        {
            Control = new SalControl(SalControlFlags.Syn | SalControlFlags.Ack, SalIss, SalRcvNxt, PacketHarness.PeerNonce),
            Tcp = new TcpRepr
            {
                Flags = TcpFlags.Syn | TcpFlags.Ack,
                SequenceNumber = TcpIss,
                AckNumber = TcpRcvNxt,
                Window = 5792,
                MaxSegmentSize = 1448,
                WindowScale = 1,
            },
        });
        SalNxt = SalIss + 1;
        TcpNxt = TcpIss + 1;
        Expect(
            p => p.Control is { } c && c.Flags == SalControlFlags.Ack && c.Verno == SalRcvNxt && c.Ackno == SalNxt
                && p.DestinationService == PacketHarness.Service && p.Tcp.Flags == TcpFlags.Ack && p.Tcp.AckNumber == TcpNxt,
            "our handshake ACK");
        h.ExpectNothing();
    }

    /// <summary>
    /// Takes our data segments in order until our transport FIN arrives, acknowledging each batch cumulatively (the ACK
    /// that covers the FIN is left to the test). Nothing of the SAL may come before it: our SAL FIN waits for that ACK.
    /// </summary>
    public void ReceiveUntilTransportFin(TimeSpan limit)
    {
        var deadline = h.Now + limit;
        while (!TransportFinReceived)
        {
            Assert.True(h.Now < deadline, $"our transport FIN did not come; {Received.Count} bytes arrived");
            if (h.Pending == 0)
            {
                h.Advance(TimeSpan.FromMilliseconds(1));
                continue;
            }

            while (h.Pending > 0)
            {
                var p = Expect(out var payload, p => p.Control is null && p.Protocol == SalPacketRepr.ProtocolTcp, "our data (no SAL control packet)");
                Assert.Equal(TcpRcvNxt, p.Tcp.SequenceNumber); // in order: nothing is lost here
                Received.AddRange(payload);
                TcpRcvNxt += (uint)payload.Length;
                if (p.Tcp.Has(TcpFlags.Fin))
                {
                    TcpRcvNxt++;
                    TransportFinReceived = true;
                }
            }

            if (!TransportFinReceived)
            {
                Send(Tcp(TcpFlags.Ack));
            }
        }
    }

    /// <summary>Sends <paramref name="data"/> in the reference's segments, the transport FIN on the last one (as frame 46).</summary>
    public void SendDataAndFin(byte[] data)
    {
        for (var offset = 0; offset < data.Length; offset += SegmentSize)
        {
            var n = Math.Min(SegmentSize, data.Length - offset);
            var last = offset + n == data.Length;
            Send(Tcp(last ? TcpFlags.Fin | TcpFlags.Psh | TcpFlags.Ack : TcpFlags.Ack), data.AsSpan(offset, n));
            TcpNxt += (uint)n + (last ? 1u : 0u);
        }
    }

    /// <summary>Takes our pure transport ACKs; returns the highest acknowledgement number among them.</summary>
    public uint TakeAcks()
    {
        uint highest = 0;
        var any = false;
        while (h.Pending > 0)
        {
            var p = Expect(out var payload, p => p.Control is null && p.Protocol == SalPacketRepr.ProtocolTcp && p.Tcp.Flags == TcpFlags.Ack, "our pure ACK");
            Assert.Empty(payload);
            highest = !any || Serial.Gt(p.Tcp.AckNumber, highest) ? p.Tcp.AckNumber : highest;
            any = true;
        }

        Assert.True(any, "no ACK from us");
        return highest;
    }
}
