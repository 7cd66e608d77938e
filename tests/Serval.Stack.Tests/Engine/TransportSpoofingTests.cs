using Serval.Stack;
using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.Engine.PacketHarness;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// An attacker who has seen a stream flow's flowIDs (not its nonces, sequence numbers or acknowledgement numbers)
/// injects 10^4 forged packets of each kind into an engine with an established stream flow (and a batch with
/// random flowIDs): nothing is accepted, the flow stays established and completes a legitimate transfer, and every
/// dropped packet is counted under its kind. All randomness is seeded, so each run is the same.
/// </summary>
public sealed class TransportSpoofingTests
{
    private const int Spoofs = 10_000;

    /// <summary>An engine ("us", the server) with an accepted stream flow, and the test's own TCP as the peer.</summary>
    private sealed class StreamPair
    {
        private readonly byte[] _buffer = new byte[2048];

        public StreamPair()
        {
            H = new PacketHarness(seed: 11);
            H.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Stream, 4, H.Now, out var listener);
            Peer = new StreamConnection(StreamOptions.Default with { Mss = 1400 }, new SeededRandomSource(12), H.Now);
            var syn = Peer.CreateSyn(H.Now);
            H.Send(new SalPacketRepr
            {
                SourceFlow = PeerFlow,
                Protocol = SalPacketRepr.ProtocolTcp,
                Control = new SalControl(SalControlFlags.Syn, 5000, 0, PeerNonce),
                DestinationService = Service,
                Tcp = syn,
            });
            var synAck = H.Expect(p => p.Control is { } c && c.Flags == (SalControlFlags.Syn | SalControlFlags.Ack), "SYN-ACK");
            OurFlow = synAck.SourceFlow;
            Assert.True(Peer.OnSynAck(synAck.Tcp, H.Now));
            H.Send(new SalPacketRepr
            {
                SourceFlow = PeerFlow,
                DestinationFlow = OurFlow,
                Protocol = SalPacketRepr.ProtocolTcp,
                Control = new SalControl(SalControlFlags.Ack, 5001, synAck.Control!.Value.Verno + 1, PeerNonce),
                DestinationService = Service,
                Tcp = Peer.CreateHandshakeAck(),
            });
            Assert.Equal(ServalError.None, H.Engine.Accept(listener, out var socket));
            Socket = socket;
            PeerIss = syn.SequenceNumber;
            OurIss = synAck.Tcp.SequenceNumber;
            SalVerno = synAck.Control.Value.Verno + 1;
            Assert.Equal(StreamState.Established, Peer.State);
        }

        public static FlowId PeerFlow { get; } = new(77);

        public PacketHarness H { get; }

        public StreamConnection Peer { get; }

        public FlowId OurFlow { get; }

        public SocketHandle Socket { get; }

        public uint PeerIss { get; }

        public uint OurIss { get; }

        public uint SalVerno { get; }

        /// <summary>Bytes the engine's application has read, in order.</summary>
        public List<byte> EngineRead { get; } = [];

        /// <summary>Bytes the peer's application has read, in order.</summary>
        public List<byte> PeerRead { get; } = [];

        public bool EngineSawEnd { get; private set; }

        /// <summary>The engine's RCV.NXT (the peer's next sequence number) once everything is delivered.</summary>
        public uint RcvNxt => unchecked(PeerIss + 1 + (uint)PeerSent);

        /// <summary>The engine's SND.NXT once everything is delivered.</summary>
        public uint SndNxt => unchecked(OurIss + 1 + (uint)EngineSent);

        public long PeerSent { get; private set; }

        public long EngineSent { get; private set; }

        public EngineCounters Counters => H.Engine.Counters;

        public StreamStatistics Stats => H.Engine.GetFlow(Socket)!.Stream!.Value;

        /// <summary>Forges a packet of the flow without SAL control (the attacker knows the flowIDs only).</summary>
        public void Spoof(TcpRepr tcp, ReadOnlySpan<byte> payload = default, FlowId? destination = null) =>
            H.Send(new SalPacketRepr { SourceFlow = PeerFlow, DestinationFlow = destination ?? OurFlow, Protocol = SalPacketRepr.ProtocolTcp, Tcp = tcp }, payload);

        /// <summary>Both applications write, the transports exchange segments, both applications read; until done.</summary>
        public void Transfer(byte[] up, byte[] down, bool peerCloses = false)
        {
            long upWritten = 0, downWritten = 0;
            var readUntil = EngineRead.Count + up.Length;
            var peerReadUntil = PeerRead.Count + down.Length;
            var closed = false;
            var scratch = new byte[65536];
            for (var round = 0; round < 100_000; round++)
            {
                if (upWritten < up.Length)
                {
                    upWritten += Peer.Write(up.AsSpan((int)upWritten));
                }

                if (downWritten < down.Length)
                {
                    H.Engine.Write(Socket, down.AsSpan((int)downWritten), H.Now, out var w);
                    downWritten += w;
                }

                if (peerCloses && !closed && upWritten == up.Length)
                {
                    Peer.CompleteWrites();
                    closed = true;
                }

                while (Peer.TryPoll(H.Now, _buffer, out var seg, out var len))
                {
                    H.Send(new SalPacketRepr { SourceFlow = PeerFlow, DestinationFlow = OurFlow, Protocol = SalPacketRepr.ProtocolTcp, Tcp = seg }, _buffer.AsSpan(0, len));
                }

                H.Poll();
                while (H.Pending > 0)
                {
                    var p = H.Expect(out var payload);
                    if (!p.ControlOnly && p.Protocol == SalPacketRepr.ProtocolTcp)
                    {
                        Peer.OnSegment(p.Tcp, payload, H.Now);
                    }
                }

                while (H.Engine.Read(Socket, scratch, H.Now, out var n, out var completed) == ServalError.None && (n > 0 || completed))
                {
                    EngineRead.AddRange(scratch.AsSpan(0, n));
                    if (completed)
                    {
                        EngineSawEnd = true;
                        break;
                    }
                }

                for (int n; (n = Peer.Read(scratch)) > 0;)
                {
                    PeerRead.AddRange(scratch.AsSpan(0, n));
                }

                var done = EngineRead.Count >= readUntil && PeerRead.Count >= peerReadUntil && Peer.BytesUnacknowledged == 0
                    && H.Engine.GetFlow(Socket)!.Stream!.Value.BytesInFlight == 0 && (!peerCloses || EngineSawEnd);
                if (done)
                {
                    PeerSent += up.Length + (peerCloses ? 1 : 0);
                    EngineSent += down.Length;
                    return;
                }

                var next = H.Engine.NextTimeout(H.Now);
                if (Peer.NextTimeout is { } t && (next is null || t < next))
                {
                    next = t;
                }

                H.Advance(next is { } at && at > H.Now ? at - H.Now : TimeSpan.FromMilliseconds(1));
            }

            Assert.Fail("the transfer did not complete");
        }

        /// <summary>The flow is intact: established, no end of stream, and a legitimate transfer each way still works.</summary>
        public void AssertIntactAndWorking(int seed)
        {
            Assert.Equal(SalState.Connected, H.Engine.GetState(Socket));
            Assert.Equal(StreamState.Established, Peer.State);
            Assert.False(EngineSawEnd);
            var readBefore = EngineRead.Count;
            var peerReadBefore = PeerRead.Count;
            var up = Bytes(50_000, seed);
            var down = Bytes(50_000, seed + 1);
            Transfer(up, down);
            Assert.Equal(up, EngineRead.Skip(readBefore).ToArray());
            Assert.Equal(down, PeerRead.Skip(peerReadBefore).ToArray());
        }
    }

    private static byte[] Bytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>A pair after a legitimate exchange: 100 kB each way, everything read and acknowledged.</summary>
    private static (StreamPair Pair, byte[] Up, byte[] Down) Established()
    {
        var pair = new StreamPair();
        var up = Bytes(100_000, 1);
        var down = Bytes(100_000, 2);
        pair.Transfer(up, down);
        Assert.Equal(up, pair.EngineRead.ToArray());
        Assert.Equal(down, pair.PeerRead.ToArray());
        pair.H.Drain();
        return (pair, up, down);
    }

    private static uint U32(Random r) => (uint)r.NextInt64(0, 1L << 32);

    /// <summary>Delta of a set of counters over an action.</summary>
    private static long[] Snapshot(StreamPair p) =>
    [
        p.Counters.SpoofTransportRst, p.Counters.SpoofSyn, p.Counters.SpoofFin, p.Counters.AckUnacceptable, p.Counters.DataOutOfWindow,
        p.Counters.ChallengeAcksSent, p.Counters.ChallengeAcksSuppressed, p.Stats.DuplicateSegmentsReceived, p.Counters.BadNonce,
        p.Counters.ResetsIgnored, p.Counters.UnknownFlow,
    ];

    private sealed record Delta(long Rst, long Syn, long Fin, long Ack, long Oow, long ChallengeSent, long ChallengeSuppressed, long Duplicates, long BadNonce, long ResetsIgnored, long UnknownFlow);

    private static Delta Measure(StreamPair p, Action spoof, out int packetsOut)
    {
        var before = Snapshot(p);
        var pendingBefore = p.H.Pending;
        spoof();
        packetsOut = p.H.Pending - pendingBefore;
        p.H.Drain();
        var after = Snapshot(p);
        var d = after.Zip(before, (a, b) => a - b).ToArray();
        return new Delta(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10]);
    }

    /// <summary>The engine answers at most the rate limit with challenge ACKs, and every answer is counted.</summary>
    private static void AssertChallengeAcks(Delta d, int packetsOut)
    {
        Assert.Equal(d.ChallengeSent, packetsOut - d.Duplicates);
        Assert.InRange(d.ChallengeSent, 0, StreamOptions.Default.ChallengeAcksPerSecond);
    }

    [Fact]
    public void Transport_resets_never_reset_the_flow()
    {
        var (p, _, _) = Established();
        var r = new Random(101);
        var d = Measure(p, () =>
        {
            for (var i = 0; i < Spoofs; i++)
            {
                // One in ten carries exactly RCV.NXT: the reset a bare TCP stack would honour.
                var seq = i % 10 == 0 ? p.RcvNxt : i % 10 == 1 ? unchecked(p.RcvNxt + (uint)r.Next(1, 1 << 22)) : U32(r);
                p.Spoof(new TcpRepr { SequenceNumber = seq, AckNumber = U32(r), Flags = i % 2 == 0 ? TcpFlags.Rst : TcpFlags.Rst | TcpFlags.Ack });
            }
        }, out var sent);
        Assert.Equal(Spoofs, d.Rst);
        Assert.Equal(0, d.Duplicates);
        Assert.True(d.ChallengeSent + d.ChallengeSuppressed >= 2 * Spoofs / 10, "every RST in the window is challenged or the challenge is counted as suppressed");
        AssertChallengeAcks(d, sent);
        p.AssertIntactAndWorking(102);
    }

    [Fact]
    public void Transport_fins_never_end_the_stream()
    {
        var (p, _, _) = Established();
        var r = new Random(201);
        var inWindowLuckyAck = 0;
        var d = Measure(p, () =>
        {
            for (var i = 0; i < Spoofs; i++)
            {
                // Half blind (random sequence and acknowledgement numbers), half inside the window past RCV.NXT
                // with an acceptable ACK (the attacker guessed the acknowledgement): the FIN's position betrays it.
                var lucky = i % 2 == 0;
                var seq = lucky ? unchecked(p.RcvNxt + (uint)r.Next(1, 1 << 22)) : U32(r);
                var ack = lucky ? p.SndNxt : U32(r);
                inWindowLuckyAck += lucky ? 1 : 0;
                p.Spoof(new TcpRepr { SequenceNumber = seq, AckNumber = ack, Flags = TcpFlags.Fin | TcpFlags.Ack, Window = 1000 });
            }
        }, out var sent);
        Assert.Equal(Spoofs, d.Fin + d.Ack + d.Oow + d.Duplicates);
        Assert.True(d.Fin >= inWindowLuckyAck);
        Assert.True(d.Ack > 0 && d.Oow > 0);
        AssertChallengeAcks(d, sent);
        Assert.False(p.Stats.BytesReceived > p.PeerSent);
        p.AssertIntactAndWorking(202);

        // The genuine FIN still ends the stream.
        p.Transfer(Bytes(10_000, 203), [], peerCloses: true);
        Assert.True(p.EngineSawEnd);
    }

    [Theory]
    [InlineData(SalControlFlags.Rst)]
    [InlineData(SalControlFlags.Fin)]
    [InlineData(SalControlFlags.Rsyn)]
    [InlineData(SalControlFlags.Rst | SalControlFlags.Ack)]
    public void Sal_control_with_a_wrong_nonce_is_ignored(SalControlFlags flags)
    {
        var (p, _, _) = Established();
        var r = new Random(300 + (int)flags);
        var d = Measure(p, () =>
        {
            for (var i = 0; i < Spoofs; i++)
            {
                var nonce = new Nonce((ulong)r.NextInt64() ^ ((ulong)r.Next() << 63));
                var verno = i % 2 == 0 ? p.SalVerno : U32(r);
                p.H.Send(Control(flags, verno, U32(r), PairFlow, p.OurFlow, nonce));
            }
        }, out var sent);
        Assert.Equal(0, sent);
        if ((flags & SalControlFlags.Rst) != 0)
        {
            Assert.Equal(Spoofs, d.ResetsIgnored);
        }
        else
        {
            Assert.Equal(Spoofs, d.BadNonce);
        }

        Assert.Equal(MigrationState.None, p.H.Engine.GetFlow(p.Socket)!.Migration);
        p.AssertIntactAndWorking(301);
    }

    private static FlowId PairFlow => StreamPair.PeerFlow;

    [Fact]
    public void Tcp_syns_get_challenge_acks_and_change_nothing()
    {
        var (p, _, _) = Established();
        var r = new Random(401);
        var d = Measure(p, () =>
        {
            for (var i = 0; i < Spoofs; i++)
            {
                var seq = i % 2 == 0 ? unchecked(p.RcvNxt + (uint)r.Next(0, 1 << 22)) : U32(r);
                p.Spoof(new TcpRepr { SequenceNumber = seq, AckNumber = U32(r), Flags = i % 4 < 2 ? TcpFlags.Syn : TcpFlags.Syn | TcpFlags.Ack, Window = 1000, MaxSegmentSize = 536 });
            }
        }, out var sent);
        Assert.Equal(Spoofs, d.Syn);
        Assert.Equal(Spoofs, d.ChallengeSent + d.ChallengeSuppressed);
        AssertChallengeAcks(d, sent);
        p.AssertIntactAndWorking(402);
    }

    [Fact]
    public void Data_is_accepted_only_with_an_acceptable_ack()
    {
        var (p, _, _) = Established();
        var r = new Random(501);
        var payload = new byte[1000];
        var received = p.Stats.BytesReceived;
        var d = Measure(p, () =>
        {
            // Ten times the usual count, blind: about one in a thousand lands in the 4 MiB window, and the ACK check
            // must turn those away (a blind spoofer also has to guess an acceptable ACK: about 1 in 10^6 together).
            for (var i = 0; i < 10 * Spoofs; i++)
            {
                r.NextBytes(payload);
                p.Spoof(new TcpRepr { SequenceNumber = U32(r), AckNumber = U32(r), Flags = TcpFlags.Ack | TcpFlags.Psh, Window = 1000 }, payload.AsSpan(0, r.Next(1, 1001)));
            }

            // The same number inside the window with random acknowledgement numbers outside the acceptable range.
            for (var i = 0; i < Spoofs; i++)
            {
                var ack = unchecked(p.SndNxt + 1 + (uint)r.NextInt64(0, (1L << 32) - (16 << 20)));
                p.Spoof(new TcpRepr { SequenceNumber = unchecked(p.RcvNxt + (uint)r.Next(0, 1 << 22)), AckNumber = ack, Flags = TcpFlags.Ack, Window = 1000 }, payload.AsSpan(0, r.Next(1, 1001)));
            }
        }, out var sent);
        Assert.Equal(11 * Spoofs, d.Ack + d.Oow + d.Duplicates);
        Assert.True(d.Ack >= Spoofs + 1, $"blind spoofs inside the window must fail the ACK check too (ack {d.Ack})");
        Assert.Equal(received, p.Stats.BytesReceived);
        Assert.Equal(0, p.H.Engine.Available(p.Socket));
        AssertChallengeAcks(d, sent);
        p.AssertIntactAndWorking(502);
    }

    [Fact]
    public void Data_outside_the_window_is_dropped_and_counted()
    {
        var (p, _, _) = Established();
        var r = new Random(601);
        var payload = new byte[1000];
        var d = Measure(p, () =>
        {
            for (var i = 0; i < Spoofs; i++)
            {
                // Beyond the right edge (4 MiB window) and not within the last 4 MiB before RCV.NXT either.
                var offset = (uint)r.NextInt64(5 << 20, (1L << 32) - (5 << 20));
                r.NextBytes(payload);
                p.Spoof(new TcpRepr { SequenceNumber = unchecked(p.RcvNxt + offset), AckNumber = i % 2 == 0 ? p.SndNxt : U32(r), Flags = TcpFlags.Ack, Window = 1000 }, payload.AsSpan(0, r.Next(1, 1001)));
            }
        }, out var sent);
        Assert.Equal(Spoofs, d.Oow);
        Assert.Equal(0, d.Duplicates);
        Assert.Equal(Spoofs, d.ChallengeSent + d.ChallengeSuppressed);
        AssertChallengeAcks(d, sent);
        p.AssertIntactAndWorking(602);
    }

    [Fact]
    public void Forged_acks_never_acknowledge_undelivered_data()
    {
        var (p, _, _) = Established();

        // 60 kB from the engine that the peer has not received (the packets are held back).
        var down = Bytes(60_000, 701);
        p.H.Engine.Write(p.Socket, down, p.H.Now, out var written);
        Assert.Equal(down.Length, written);
        p.H.Poll();
        var held = new List<(SalPacketRepr P, byte[] Payload)>();
        while (p.H.Pending > 0)
        {
            var pk = p.H.Expect(out var pl);
            held.Add((pk, pl));
        }

        var inFlight = p.H.Engine.GetFlow(p.Socket)!.Stream!.Value.BytesInFlight;
        Assert.True(inFlight > 0);
        var r = new Random(702);
        var oldAcks = 0;
        var maxSndWnd = 4L << 20;
        var d = Measure(p, () =>
        {
            for (var i = 0; i < Spoofs; i++)
            {
                // Inside the receive window (as if guessed): only the ACK field can stop it. Pure ACKs, random ACK
                // numbers, a third of them above SND.NXT by a small amount.
                var ack = i % 3 == 0 ? unchecked(p.SndNxt + (uint)inFlight + (uint)r.Next(1, 1 << 20)) : U32(r);
                var distance = unchecked((int)(ack - p.SndNxt));
                oldAcks += distance <= 0 && distance >= -maxSndWnd - (1 << 16) ? 1 : 0;
                p.Spoof(new TcpRepr { SequenceNumber = unchecked(p.RcvNxt + (uint)r.Next(0, 1 << 20)), AckNumber = ack, Flags = TcpFlags.Ack, Window = 65535 });
            }
        }, out var sent);

        // Acknowledgements inside [SND.UNA − MAX.SND.WND, SND.UNA] are acceptable (old, harmless); none fell inside
        // (SND.UNA, SND.NXT] with this seed; the rest are dropped and counted.
        Assert.Equal(inFlight, p.H.Engine.GetFlow(p.Socket)!.Stream!.Value.BytesInFlight);
        Assert.InRange(Spoofs - d.Ack, 0, oldAcks);
        Assert.True(d.Ack >= Spoofs / 3);
        AssertChallengeAcks(d, sent);

        // Deliver the held segments: the peer gets exactly the engine's bytes.
        foreach (var (pk, pl) in held)
        {
            p.Peer.OnSegment(pk.Tcp, pl, p.H.Now);
        }

        p.Transfer([], []);
        var scratch = new byte[65536];
        for (int n; (n = p.Peer.Read(scratch)) > 0;)
        {
            p.PeerRead.AddRange(scratch.AsSpan(0, n));
        }

        Assert.Equal(down, p.PeerRead.Skip(100_000).ToArray());
        p.AssertIntactAndWorking(703);
    }

    [Fact]
    public void Spoofs_with_unknown_flow_ids_never_reach_a_flow()
    {
        var (p, _, _) = Established();
        var r = new Random(801);
        var payload = new byte[500];
        var d = Measure(p, () =>
        {
            for (var i = 0; i < Spoofs; i++)
            {
                var flow = new FlowId((uint)r.NextInt64(1, 1L << 32));
                if (flow == p.OurFlow)
                {
                    continue;
                }

                var flags = (i % 5) switch
                {
                    0 => TcpFlags.Rst,
                    1 => TcpFlags.Fin | TcpFlags.Ack,
                    2 => TcpFlags.Syn,
                    _ => TcpFlags.Ack,
                };
                p.Spoof(new TcpRepr { SequenceNumber = U32(r), AckNumber = U32(r), Flags = flags, Window = 1000 }, i % 5 == 3 ? payload : default, flow);
            }
        }, out _);
        Assert.Equal(Spoofs, d.UnknownFlow);
        Assert.Equal(0, d.Rst + d.Syn + d.Fin + d.Ack + d.Oow + d.Duplicates);
        p.AssertIntactAndWorking(802);
    }
}
