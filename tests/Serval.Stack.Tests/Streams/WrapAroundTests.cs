using Serval.Simulation;
using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Sequence numbers wrap at 2^32 (serial-number arithmetic, RFC 1982 / RFC 9293 §3.4).</summary>
public sealed class WrapAroundTests
{
    [Fact]
    public void Sending_across_the_wrap_point_works()
    {
        var peer = ScriptedPeer.ActiveOpen(iss: uint.MaxValue - 2500);
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 6000));
        var sent = peer.Drain();
        Assert.Equal(6, sent.Count);
        Assert.Contains(sent, s => s.Segment.SequenceNumber < 10_000); // Wrapped.
        Assert.Equal(ScriptedPeer.Pattern(0, 6000), sent.SelectMany(s => s.Payload).ToArray());

        // SACK blocks on both sides of the wrap, then the repair and the cumulative ACK past zero.
        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.SackAck(1000, (2000, 6000)));
        var (repair, payload) = peer.Expect();
        Assert.Equal(peer.Seq(1000), repair.SequenceNumber);
        Assert.Equal(ScriptedPeer.Pattern(1000, 1000), payload);
        peer.Send(peer.Ack(6000));
        Assert.Equal(6000, peer.Tcb.Statistics.BytesAcked);
        Assert.Equal(0, peer.Tcb.Statistics.BytesInFlight);
    }

    [Fact]
    public void Receiving_across_the_wrap_point_works()
    {
        var peer = ScriptedPeer.ActiveOpen(peerIss: uint.MaxValue - 1500);
        var first = peer.PeerNext;
        peer.PeerNext = peer.PeerSeq(2000); // Beyond the wrap, out of order, with the FIN.
        peer.SendData(1000, 0, TcpFlags.Fin);
        var (ack, _) = peer.Expect();
        Assert.Equal(new TcpSackBlock(peer.PeerSeq(2000), peer.PeerSeq(3000)), ack.SackBlocks[0]);
        Assert.False(peer.Tcb.PeerFinReceived);
        peer.PeerNext = first;
        peer.SendData(1000);
        peer.SendData(1000);
        Assert.Equal(peer.PeerSeq(3000), peer.Drain()[^1].Segment.AckNumber);
        peer.PeerNext = peer.PeerSeq(3000);
        peer.SendData(0, 0, TcpFlags.Fin); // The out-of-order FIN was ignored; the peer repeats it.
        Assert.Equal(peer.PeerSeq(3001), peer.Drain()[^1].Segment.AckNumber);
        var buffer = new byte[4000];
        Assert.Equal(3000, peer.Tcb.Read(buffer));
        Assert.Equal(ScriptedPeer.Pattern(0, 3000), buffer[..3000]);
        Assert.True(peer.Tcb.ReadsCompleted);
    }

    [Fact]
    public void Bulk_transfer_wraps_both_sequence_spaces_over_a_lossy_path()
    {
        var path = new LinkConditions { Delay = TimeSpan.FromMilliseconds(5), BandwidthBitsPerSecond = 100_000_000, Loss = 0.02 };
        const long bytes = 6L * 1024 * 1024;
        var r = Transfers.OneWay(path, path, bytes, seed: 99, clientIss: uint.MaxValue - 3_000_000, serverIss: uint.MaxValue - 100);
        Assert.True(r.Completed, r.ToString());
        Assert.True(r.HashesMatch);
        Assert.Equal(bytes, r.BytesReceived);
        Assert.True(r.SenderStatistics.Retransmissions > 0);
    }
}
