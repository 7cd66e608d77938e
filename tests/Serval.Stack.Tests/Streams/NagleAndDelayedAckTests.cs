using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Nagle's algorithm (RFC 9293 §3.7.4) and delayed acknowledgements (RFC 9293 §3.8.6.3, RFC 5681 §4.2).</summary>
public sealed class NagleAndDelayedAckTests
{
    [Fact]
    public void Without_nagle_small_writes_go_out_at_once()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(new byte[10]);
        Assert.Equal(10, peer.Expect().Payload.Length);
        peer.Tcb.Write(new byte[20]);
        Assert.Equal(20, peer.Expect().Payload.Length);
        peer.Tcb.Write(new byte[30]);
        Assert.Equal(30, peer.Expect().Payload.Length);
    }

    [Fact]
    public void With_nagle_small_writes_wait_for_the_outstanding_data_to_be_acknowledged()
    {
        var peer = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { NoDelay = false });
        peer.Tcb.Write(new byte[10]);
        Assert.Equal(10, peer.Expect().Payload.Length); // Nothing outstanding: sent.
        peer.Tcb.Write(new byte[20]);
        peer.Tcb.Write(new byte[30]);
        peer.ExpectNothing(); // Coalesced while the first is unacknowledged.

        peer.Send(peer.Ack(10));
        var (segment, payload) = peer.Expect();
        Assert.Equal(50, payload.Length);
        Assert.Equal(peer.Seq(10), segment.SequenceNumber);
    }

    [Fact]
    public void With_nagle_full_segments_are_not_delayed()
    {
        var peer = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { NoDelay = false });
        peer.Tcb.Write(new byte[10]);
        peer.Expect();
        peer.Tcb.Write(new byte[2500]);
        var sent = peer.Drain();
        Assert.Equal([1000, 1000], sent.Select(s => s.Payload.Length)); // The 500-byte tail waits.
    }

    [Fact]
    public void With_nagle_the_last_piece_goes_with_the_fin()
    {
        var peer = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { NoDelay = false });
        peer.Tcb.Write(new byte[10]);
        peer.Expect();
        peer.Tcb.Write(new byte[20]);
        peer.Tcb.CompleteWrites();
        var (fin, payload) = peer.Expect();
        Assert.True(fin.Has(TcpFlags.Fin));
        Assert.Equal(20, payload.Length);
    }

    [Fact]
    public void A_single_segment_is_acknowledged_after_the_delay()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(500);
        peer.ExpectNothing();
        Assert.Equal(TimeSpan.FromMilliseconds(40), peer.AdvanceToNextTimeout());
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(500), ack.AckNumber);
        peer.ExpectNothing();
    }

    [Fact]
    public void Every_second_full_segment_is_acknowledged_at_once()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(1000);
        peer.ExpectNothing();
        peer.SendData(1000);
        Assert.Equal(peer.PeerSeq(2000), peer.Expect().Segment.AckNumber);
        peer.SendData(1000);
        peer.ExpectNothing();
        peer.SendData(1000);
        Assert.Equal(peer.PeerSeq(4000), peer.Expect().Segment.AckNumber);
    }

    [Fact]
    public void Zero_delay_acknowledges_every_segment()
    {
        var peer = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { DelayedAck = TimeSpan.Zero });
        peer.SendData(100);
        Assert.Equal(peer.PeerSeq(100), peer.Expect().Segment.AckNumber);
        peer.SendData(100);
        Assert.Equal(peer.PeerSeq(200), peer.Expect().Segment.AckNumber);
    }

    [Fact]
    public void Delayed_ack_rides_on_outgoing_data()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(500);
        peer.Tcb.Write(new byte[100]);
        var (segment, payload) = peer.Expect();
        Assert.Equal(100, payload.Length);
        Assert.Equal(peer.PeerSeq(500), segment.AckNumber);
        peer.Advance(TimeSpan.FromMilliseconds(40));
        peer.ExpectNothing(); // No separate ACK when the delay expires.
    }

    [Fact]
    public void Out_of_order_segment_is_acknowledged_at_once()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.PeerNext = peer.PeerSeq(1000);
        peer.SendData(100);
        Assert.Equal(peer.PeerSeq(0), peer.Expect().Segment.AckNumber);
    }
}
