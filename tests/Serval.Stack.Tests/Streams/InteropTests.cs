using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// Interoperation with the reference implementation's TCP (a Linux port): it offers only MSS 1448 and window scale 1,
/// sends window 0 in its SYN, and no options after the handshake. The byte strings are the TCP headers of the
/// reference's handshake (SAL capture of a 30000-byte transfer).
/// </summary>
public sealed class InteropTests
{
    // Client SYN: seq 0xab505383, window 0, MSS 1448, NOP, WS 1.
    internal static readonly byte[] ReferenceSyn = Convert.FromHexString("00000000ab5053830000000070020000" + "6dc00000020405a801030301");

    // Server SYN-ACK: seq 0x07cb93aa, ack 0xab505384, window 5792, MSS 1448, NOP, WS 1.
    internal static readonly byte[] ReferenceSynAck = Convert.FromHexString("0000000007cb93aaab505384701216a0" + "bb990000020405a801030301");

    // Client handshake ACK: seq 0xab505384, ack 0x07cb93ab, window 2896 (×2).
    internal static readonly byte[] ReferenceAck = Convert.FromHexString("00000000ab50538407cb93ab50100b50f2a20000");

    private static TcpRepr Parse(byte[] bytes)
    {
        Assert.True(TcpRepr.TryParse(bytes, out var repr, out _, out _));
        return repr;
    }

    [Fact]
    public void Our_server_accepts_the_reference_client_handshake()
    {
        var now = TimeSpan.FromSeconds(1);
        var tcb = new StreamConnection(StreamOptions.Default, new SeededRandomSource(3), now);
        var syn = Parse(ReferenceSyn);
        Assert.Equal((ushort)0, syn.Window);
        Assert.True(tcb.OnSyn(syn, now));
        var synAck = tcb.CreateSynAck(now);
        Assert.Equal(0xab505384u, synAck.AckNumber);
        Assert.Equal((ushort)1400, synAck.MaxSegmentSize);
        Assert.Equal((byte)7, synAck.WindowScale);
        Assert.False(synAck.SackPermitted);
        Assert.Null(synAck.Timestamp);

        // The reference's ACK acknowledges ITS server's ISS; re-aim it at ours, keep everything else.
        var ack = Parse(ReferenceAck) with { AckNumber = synAck.SequenceNumber + 1 };
        Assert.True(tcb.OnHandshakeAck(ack, default, now + TimeSpan.FromMilliseconds(1)));
        Assert.Equal(2896 * 2, tcb.Statistics.SendWindow);

        // Window 5792 and MSS 1400 (no options): four full segments, then silly-window avoidance holds the rest.
        tcb.Write(new byte[30000]);
        var buffer = new byte[1400];
        var segments = new List<int>();
        while (tcb.TryPoll(now, buffer, out var s, out var n))
        {
            Assert.Equal(20, s.HeaderLength);
            segments.Add(n);
        }

        Assert.Equal([1400, 1400, 1400, 1400], segments);
    }

    [Fact]
    public void Our_client_accepts_the_reference_server_syn_ack()
    {
        var now = TimeSpan.FromSeconds(1);
        var tcb = new StreamConnection(StreamOptions.Default, new SeededRandomSource(3), now, 0xab505383);
        var syn = tcb.CreateSyn(now);
        Assert.Equal(0xab505383u, syn.SequenceNumber);
        Assert.True(tcb.OnSynAck(Parse(ReferenceSynAck), now + TimeSpan.FromMilliseconds(10)));
        Assert.Equal(StreamState.Established, tcb.State);
        Assert.False(tcb.SackEnabled);
        Assert.False(tcb.TimestampsEnabled);
        Assert.Equal(1, tcb.SendWindowShift);
        Assert.Equal(7, tcb.ReceiveWindowShift);
        Assert.Equal(1400, tcb.Mss);
        Assert.Equal(5792, tcb.Statistics.SendWindow); // Unscaled in a SYN.

        var ack = tcb.CreateHandshakeAck();
        Assert.Equal(0x07cb93abu, ack.AckNumber);
        Assert.Equal(0xab505384u, ack.SequenceNumber);
        Assert.Null(ack.Timestamp);
        Assert.Equal(0, ack.SackBlocks.Count);
    }

    [Fact]
    public void Zero_window_in_the_peer_syn_does_not_stall_the_connection()
    {
        // The reference SYN's window 0 is replaced by the handshake ACK's window.
        var peer = ScriptedPeer.PassiveOpen(
            ScriptedPeer.TestOptions,
            new TcpRepr { Window = 0, MaxSegmentSize = 1448, WindowScale = 1 });
        peer.Tcb.Write(new byte[5000]);
        Assert.NotEmpty(peer.Drain());
    }

    public static TheoryData<string, bool> Paths() => new()
    {
        { "clean-5ms", false },
        { "clean-5ms", true },
        { "loss-1pct", false },
        { "loss-1pct", true },
        { "everything", false },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public void Transfers_complete_against_a_reference_like_peer(string path, bool referenceSends)
    {
        // The "reference" side offers MSS and window scale only and sends window 0 in its SYN.
        var reference = StreamOptions.Default with { UseSack = false, UseTimestamps = false, Mss = 1448 };
        var (forward, reverse) = PathProfiles.Get(path);
        const long bytes = 4L * 1024 * 1024;
        var r = Transfers.OneWay(
            forward,
            reverse,
            bytes,
            seed: 77,
            senderOptions: referenceSends ? reference : StreamOptions.Default,
            receiverOptions: referenceSends ? StreamOptions.Default : reference,
            serverSends: !referenceSends,
            clientSynTransform: s => s with { Window = 0 });
        Assert.True(r.Completed, r.ToString());
        Assert.Equal(bytes, r.BytesReceived);
        Assert.True(r.HashesMatch);
        Assert.Equal(0, r.SenderStatistics.SackBlocksReceived);
    }
}
