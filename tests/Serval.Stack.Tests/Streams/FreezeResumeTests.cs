using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Migration hooks (docs/protocol.md §10): freeze during the SAL's RSYN exchange, resume afterwards.</summary>
public sealed class FreezeResumeTests
{
    internal const long CongestionControllerInitialSsthresh = long.MaxValue / 4;

    [Fact]
    public void Frozen_connection_runs_no_retransmission_timer_and_sends_no_data()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(new byte[3000]);
        peer.Drain();
        peer.Tcb.Freeze();
        Assert.True(peer.Tcb.IsFrozen);
        Assert.Null(peer.Tcb.NextTimeout);
        peer.Tcb.Write(new byte[1000]);
        peer.ExpectNothing();
        peer.Advance(TimeSpan.FromSeconds(30));
        peer.ExpectNothing();
        Assert.Equal(0, peer.Tcb.Statistics.Timeouts);
        Assert.Equal(StreamState.Established, peer.Tcb.State);

        // Acknowledgements still flow both ways.
        peer.Send(peer.Ack(1000));
        Assert.Equal(1000, peer.Tcb.Statistics.BytesAcked);
        peer.SendData(1000);
        peer.SendData(1000);
        Assert.Equal(peer.PeerSeq(2000), peer.Expect().Segment.AckNumber);
    }

    [Fact]
    public void Resume_retransmits_everything_outstanding_at_once_without_a_window_cut()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 5000));
        Assert.Equal(5, peer.Drain().Count);
        var cwnd = peer.Tcb.Statistics.CongestionWindow;
        peer.Tcb.Freeze();
        peer.Advance(TimeSpan.FromSeconds(2));
        peer.Tcb.Resume(peer.Now);
        Assert.False(peer.Tcb.IsFrozen);
        var resent = peer.Drain();
        Assert.Equal([0L, 1000, 2000, 3000, 4000], resent.Select(s => peer.OffsetOf(s.Segment)));
        Assert.Equal(ScriptedPeer.Pattern(0, 1000), resent[0].Payload);
        var s = peer.Tcb.Statistics;
        Assert.Equal(cwnd, s.CongestionWindow);
        Assert.Equal(0, s.Timeouts);
        Assert.Equal(0, s.FastRetransmits);
    }

    [Fact]
    public void Resume_with_the_old_path_up_sends_new_data_first_and_leaves_outstanding_data_to_loss_detection()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 3000));
        Assert.Equal(3, peer.Drain().Count);
        peer.Tcb.Freeze();
        peer.Tcb.Write(ScriptedPeer.Pattern(3000, 1000));
        peer.Advance(TimeSpan.FromMilliseconds(5));
        peer.Tcb.Resume(peer.Now, outstandingLost: false);
        var sent = peer.Drain();
        Assert.Equal([3000L], sent.Select(s => peer.OffsetOf(s.Segment)));
        Assert.Equal(0, peer.Tcb.Statistics.Retransmissions);

        // The old path did lose segment 0: SACKs for the rest recover it without a timeout.
        peer.Advance(TimeSpan.FromMilliseconds(1));
        peer.Send(peer.SackAck(0, (1000, 4000)));
        peer.Advance(TimeSpan.FromMilliseconds(20));
        var resent = peer.Drain();
        Assert.Contains(0L, resent.Select(s => peer.OffsetOf(s.Segment)));
        Assert.Equal(0, peer.Tcb.Statistics.Timeouts);
    }

    [Fact]
    public void Losses_of_data_sent_before_the_move_do_not_cut_the_window()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 10_000));
        Assert.Equal(10, peer.Drain().Count);
        peer.Tcb.Freeze();
        peer.Advance(TimeSpan.FromMilliseconds(50));
        peer.Tcb.Resume(peer.Now);
        peer.Drain();
        var cwnd = peer.Tcb.Statistics.CongestionWindow;

        // SACKs show that segment 0 was lost on the old path.
        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.SackAck(0, (1000, 10_000)));
        peer.Drain();
        var s = peer.Tcb.Statistics;
        Assert.Equal(1, s.FastRetransmits);
        Assert.True(s.CongestionWindow >= cwnd);
        Assert.Equal(CongestionControllerInitialSsthresh, s.SlowStartThreshold);
    }

    [Fact]
    public void Resume_on_a_connection_without_outstanding_data_just_continues()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Freeze();
        peer.Tcb.Write(new byte[500]);
        peer.ExpectNothing();
        peer.Tcb.Resume(peer.Now);
        Assert.Equal(500, peer.Expect().Payload.Length);
    }

    [Fact]
    public void Zero_window_probe_is_sent_right_after_resume()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(new byte[500]);
        peer.PeerWindow = 0;
        peer.Send(peer.Ack());
        peer.ExpectNothing();
        peer.Tcb.Freeze();
        peer.Tcb.Resume(peer.Now);
        var (probe, payload) = peer.Expect();
        Assert.Empty(payload);
        Assert.Equal(peer.Seq(-1), probe.SequenceNumber);
    }
}
