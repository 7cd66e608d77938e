using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// A hand-driven remote end for packet-level tests: the test crafts the peer's segments (<see cref="Send"/>) and
/// checks what the connection under test transmits (<see cref="Expect()"/>, <see cref="ExpectNothing"/>), on virtual
/// time. Sequence numbers are wire values; <see cref="Seq"/> and <see cref="PeerSeq"/> convert from offsets.
/// </summary>
internal sealed class ScriptedPeer
{
    /// <summary>Options that keep traces readable: 1000-byte MSS, no window scaling needed, no pacing.</summary>
    public static readonly StreamOptions TestOptions = StreamOptions.Default with
    {
        Mss = 1000,
        SendBufferSize = 64 * 1024,
        ReceiveBufferSize = 32 * 1024,
        Pacing = false,
        // The scripts step from one protocol timer to the next; giving idle buffers back is a timer of its own,
        // checked by IdleMemoryTests.
        IdleBufferRelease = null,
    };

    /// <summary>The SYN (or SYN-ACK) options the scripted peer offers by default: MSS 1000, WS 0, SACK, no timestamps.</summary>
    public static readonly TcpRepr DefaultPeerOptions = new()
    {
        Window = 65535,
        MaxSegmentSize = 1000,
        WindowScale = 0,
        SackPermitted = true,
    };

    private readonly byte[] _payload = new byte[65536];

    private ScriptedPeer(StreamConnection tcb, TimeSpan now, uint peerIss)
    {
        Tcb = tcb;
        Now = now;
        PeerIss = peerIss;
        PeerNext = unchecked(peerIss + 1);
    }

    /// <summary>The connection under test.</summary>
    public StreamConnection Tcb { get; }

    public TimeSpan Now { get; set; }

    /// <summary>The peer's ISS.</summary>
    public uint PeerIss { get; }

    /// <summary>Next sequence number the peer sends.</summary>
    public uint PeerNext { get; set; }

    /// <summary>Window the peer advertises in its segments (raw field).</summary>
    public ushort PeerWindow { get; set; } = 65535;

    /// <summary>Our ISS.</summary>
    public uint Iss => Tcb.InitialSequenceNumber;

    /// <summary>Wire sequence number of our data byte <paramref name="offset"/> (0 = first data byte).</summary>
    public uint Seq(long offset) => unchecked(Iss + 1 + (uint)offset);

    /// <summary>Wire sequence number of the peer's data byte <paramref name="offset"/>.</summary>
    public uint PeerSeq(long offset) => unchecked(PeerIss + 1 + (uint)offset);

    /// <summary>A connection we opened (client): SYN, the peer's SYN-ACK after 10 ms, our ACK.</summary>
    public static ScriptedPeer ActiveOpen(
        StreamOptions? options = null,
        TcpRepr? peerOptions = null,
        uint? iss = null,
        uint peerIss = 5000,
        TimeSpan? rtt = null)
    {
        var now = TimeSpan.FromSeconds(1);
        var tcb = new StreamConnection(options ?? TestOptions, new SeededRandomSource(1), now, iss);
        var peer = new ScriptedPeer(tcb, now, peerIss);
        var syn = tcb.CreateSyn(now);
        Assert.True(syn.Has(TcpFlags.Syn));
        peer.Now += rtt ?? TimeSpan.FromMilliseconds(10);
        var p = peerOptions ?? DefaultPeerOptions;
        var synAck = p with
        {
            SequenceNumber = peerIss,
            AckNumber = unchecked(syn.SequenceNumber + 1),
            Flags = TcpFlags.Syn | TcpFlags.Ack,
            Timestamp = p.Timestamp is { } ts ? ts with { EchoReply = syn.Timestamp?.Value ?? 0 } : null,
        };
        Assert.True(tcb.OnSynAck(synAck, peer.Now));
        var ack = tcb.CreateHandshakeAck();
        Assert.Equal(unchecked(peerIss + 1), ack.AckNumber);
        Assert.Equal(StreamState.Established, tcb.State);
        return peer;
    }

    /// <summary>A connection the peer opened (server): its SYN, our SYN-ACK, its ACK after 10 ms.</summary>
    public static ScriptedPeer PassiveOpen(
        StreamOptions? options = null,
        TcpRepr? peerOptions = null,
        uint? iss = null,
        uint peerIss = 5000)
    {
        var now = TimeSpan.FromSeconds(1);
        var tcb = new StreamConnection(options ?? TestOptions, new SeededRandomSource(2), now, iss);
        var peer = new ScriptedPeer(tcb, now, peerIss);
        var p = peerOptions ?? DefaultPeerOptions;
        var syn = p with { SequenceNumber = peerIss, Flags = TcpFlags.Syn };
        Assert.True(tcb.OnSyn(syn, now));
        var synAck = tcb.CreateSynAck(now);
        Assert.Equal(unchecked(peerIss + 1), synAck.AckNumber);
        peer.Now += TimeSpan.FromMilliseconds(10);
        Assert.True(tcb.OnHandshakeAck(peer.Ack(), default, peer.Now));
        Assert.Equal(StreamState.Established, tcb.State);
        return peer;
    }

    /// <summary>A template of the peer's next segment: ACK of <paramref name="ackOffset"/> (our data offset).</summary>
    public TcpRepr Ack(long ackOffset = 0, TcpFlags extra = TcpFlags.None) => new()
    {
        SequenceNumber = PeerNext,
        AckNumber = Seq(ackOffset),
        Flags = TcpFlags.Ack | extra,
        Window = PeerWindow,
    };

    /// <summary>An ACK carrying SACK blocks given as (start, end) data offsets.</summary>
    public TcpRepr SackAck(long ackOffset, params (long Start, long End)[] blocks)
    {
        var sack = TcpSackBlocks.Empty;
        foreach (var (s, e) in blocks)
        {
            sack = sack.Add(new TcpSackBlock(Seq(s), Seq(e)));
        }

        return Ack(ackOffset) with { SackBlocks = sack };
    }

    /// <summary>Delivers a segment from the peer.</summary>
    public void Send(in TcpRepr segment, ReadOnlySpan<byte> payload = default) => Tcb.OnSegment(segment, payload, Now);

    /// <summary>The peer sends <paramref name="length"/> bytes of data (value = offset mod 251) acknowledging <paramref name="ackOffset"/>.</summary>
    public void SendData(int length, long ackOffset = 0, TcpFlags extra = TcpFlags.None)
    {
        var data = Pattern(PeerNext - PeerIss - 1, length);
        Send(Ack(ackOffset, extra), data);
        PeerNext = unchecked(PeerNext + (uint)length + ((extra & TcpFlags.Fin) != 0 ? 1u : 0u));
    }

    /// <summary>The bytes the peer sends at stream offset <paramref name="offset"/>.</summary>
    public static byte[] Pattern(long offset, int length)
    {
        var b = new byte[length];
        for (var i = 0; i < length; i++)
        {
            b[i] = (byte)((offset + i) % 251);
        }

        return b;
    }

    /// <summary>The connection must transmit a segment now; returns it and its payload.</summary>
    public (TcpRepr Segment, byte[] Payload) Expect()
    {
        Assert.True(Tcb.TryPoll(Now, _payload, out var segment, out var length), $"expected a segment at {Now} ({Tcb})");
        return (segment, _payload.AsSpan(0, length).ToArray());
    }

    /// <summary>The connection must transmit a segment satisfying <paramref name="check"/>.</summary>
    public (TcpRepr Segment, byte[] Payload) Expect(Action<TcpRepr, byte[]> check)
    {
        var s = Expect();
        check(s.Segment, s.Payload);
        return s;
    }

    /// <summary>The connection must have nothing to send now.</summary>
    public void ExpectNothing()
    {
        var sent = Tcb.TryPoll(Now, _payload, out var segment, out var length);
        Assert.False(sent, $"expected nothing, got {Describe(segment, length)}");
    }

    /// <summary>Everything the connection transmits now.</summary>
    public List<(TcpRepr Segment, byte[] Payload)> Drain()
    {
        var all = new List<(TcpRepr, byte[])>();
        while (Tcb.TryPoll(Now, _payload, out var segment, out var length))
        {
            all.Add((segment, _payload.AsSpan(0, length).ToArray()));
        }

        return all;
    }

    public void Advance(TimeSpan by) => Now += by;

    /// <summary>Jumps to the connection's next timer (which must exist).</summary>
    public TimeSpan AdvanceToNextTimeout()
    {
        var next = Tcb.NextTimeout;
        Assert.True(next.HasValue, "expected a running timer");
        var waited = next.Value - Now;
        Now = next.Value;
        return waited;
    }

    /// <summary>Data offset of our segment's sequence number.</summary>
    public long OffsetOf(in TcpRepr segment) => unchecked((int)(segment.SequenceNumber - Seq(0)));

    public string Describe(in TcpRepr s, int length) =>
        $"[{s.Flags}] seq={OffsetOf(s)} ack={unchecked((int)(s.AckNumber - PeerSeq(0)))} win={s.Window} len={length}";
}
