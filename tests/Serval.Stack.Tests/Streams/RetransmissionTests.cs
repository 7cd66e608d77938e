using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Loss recovery: the retransmission timer (RFC 6298), SACK/RACK (RFC 8985), NewReno (RFC 6582), reneging.</summary>
public sealed class RetransmissionTests
{
    internal static readonly TcpRepr NoSack = ScriptedPeer.DefaultPeerOptions with { SackPermitted = false };

    [Fact]
    public void Retransmission_timer_backs_off_exponentially_then_gives_up()
    {
        // Without SACK there is no tail-loss probe: only the retransmission timer.
        var peer = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { MaxRetransmissions = 5 }, NoSack);
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 2500));
        Assert.Equal(3, peer.Drain().Count);

        var waits = new List<TimeSpan>();
        for (var i = 0; i < 5; i++)
        {
            waits.Add(peer.AdvanceToNextTimeout());
            var (segment, payload) = peer.Expect();
            Assert.Equal(peer.Seq(0), segment.SequenceNumber); // Always the oldest unacknowledged segment first.
            Assert.Equal(ScriptedPeer.Pattern(0, 1000), payload);
            peer.ExpectNothing(); // The window collapsed to one segment.
        }

        Assert.Equal(
            [200, 400, 800, 1600, 3200],
            waits.Select(w => (int)w.TotalMilliseconds));
        Assert.Equal(5, peer.Tcb.Statistics.Timeouts);
        Assert.Equal(TimeSpan.FromMilliseconds(6400), peer.Tcb.Statistics.Rto);

        peer.AdvanceToNextTimeout();
        peer.ExpectNothing();
        Assert.Equal(StreamState.Closed, peer.Tcb.State);
        Assert.Equal(StreamError.TimedOut, peer.Tcb.Error);
        Assert.Null(peer.Tcb.NextTimeout);
    }

    [Fact]
    public void Retransmission_timeout_is_capped_by_max_rto()
    {
        var peer = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { MaxRto = TimeSpan.FromSeconds(1) }, NoSack);
        peer.Tcb.Write(new byte[100]);
        peer.Drain();
        var waits = new List<TimeSpan>();
        for (var i = 0; i < 5; i++)
        {
            waits.Add(peer.AdvanceToNextTimeout());
            peer.Drain();
        }

        Assert.Equal([200, 400, 800, 1000, 1000], waits.Select(w => (int)w.TotalMilliseconds));
    }

    [Fact]
    public void After_a_timeout_the_window_grows_again_and_the_backoff_resets()
    {
        var peer = ScriptedPeer.ActiveOpen(peerOptions: NoSack);
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 5000));
        Assert.Equal(5, peer.Drain().Count);
        peer.AdvanceToNextTimeout();
        Assert.Single(peer.Drain());
        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.Ack(1000));

        // Slow start after the timeout: two more retransmissions for one acknowledged segment.
        var next = peer.Drain();
        Assert.Equal([1000L, 2000], next.Select(s => peer.OffsetOf(s.Segment)));
        Assert.Equal(TimeSpan.FromMilliseconds(200), peer.Tcb.Statistics.Rto);
    }

    [Fact]
    public void Karns_rule_takes_no_sample_from_a_retransmitted_segment()
    {
        var peer = ScriptedPeer.ActiveOpen(peerOptions: NoSack);
        peer.Tcb.Write(new byte[500]);
        peer.Drain();
        peer.AdvanceToNextTimeout();
        peer.Drain();
        peer.Advance(TimeSpan.FromMilliseconds(5));
        peer.Send(peer.Ack(500));
        Assert.Equal(TimeSpan.FromMilliseconds(10), peer.Tcb.Statistics.SmoothedRtt); // Still the handshake sample.
    }

    [Fact]
    public void Fin_is_retransmitted_until_acknowledged()
    {
        var peer = ScriptedPeer.ActiveOpen(peerOptions: NoSack);
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 300));
        peer.Tcb.CompleteWrites();
        var (segment, payload) = peer.Expect();
        Assert.True(segment.Has(TcpFlags.Fin));
        Assert.Equal(300, payload.Length);
        peer.Send(peer.Ack(300)); // Data acknowledged, FIN lost.
        Assert.Equal(StreamState.FinWait1, peer.Tcb.State);
        Assert.False(peer.Tcb.FinAcknowledged);

        peer.AdvanceToNextTimeout();
        var (again, empty) = peer.Expect();
        Assert.True(again.Has(TcpFlags.Fin));
        Assert.Empty(empty);
        Assert.Equal(peer.Seq(300), again.SequenceNumber);
        peer.AdvanceToNextTimeout();
        Assert.True(peer.Expect().Segment.Has(TcpFlags.Fin));

        peer.Send(peer.Ack(301));
        Assert.True(peer.Tcb.FinAcknowledged);
        Assert.Equal(StreamState.FinWait2, peer.Tcb.State);
        Assert.Null(peer.Tcb.NextTimeout);
    }

    [Fact]
    public void Sacked_segments_after_a_hole_trigger_a_fast_retransmit()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 8000));
        Assert.Equal(8, peer.Drain().Count);
        peer.Advance(TimeSpan.FromMilliseconds(10));

        // The first segment was lost; the next ones arrive and are SACKed.
        peer.Send(peer.SackAck(0, (1000, 2000)));
        peer.ExpectNothing(); // One SACKed segment could be reordering (RACK waits).
        peer.Send(peer.SackAck(0, (1000, 3000)));
        peer.Send(peer.SackAck(0, (1000, 4000)));
        var (retransmission, payload) = peer.Expect();
        Assert.Equal(peer.Seq(0), retransmission.SequenceNumber);
        Assert.Equal(ScriptedPeer.Pattern(0, 1000), payload);
        Assert.Equal(1, peer.Tcb.Statistics.FastRetransmits);
        Assert.Equal(0, peer.Tcb.Statistics.Timeouts);
        Assert.Equal(3, peer.Tcb.Statistics.SackBlocksReceived);

        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.Ack(8000));
        Assert.Equal(0, peer.Tcb.Statistics.BytesInFlight);
        Assert.True(peer.Tcb.Statistics.SlowStartThreshold < 20_000); // The congestion window was reduced.
    }

    [Fact]
    public void Rack_marks_a_lone_hole_lost_after_the_reordering_window()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 3000));
        Assert.Equal(3, peer.Drain().Count);
        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.SackAck(0, (1000, 2000)));
        peer.ExpectNothing();

        // The reordering window is a quarter of the minimum RTT.
        Assert.Equal(TimeSpan.FromMilliseconds(2.5), peer.AdvanceToNextTimeout());
        Assert.Equal(peer.Seq(0), peer.Expect().Segment.SequenceNumber);
    }

    [Fact]
    public void Holes_are_repaired_one_per_ack_under_proportional_rate_reduction()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 10_000));
        Assert.Equal(10, peer.Drain().Count);
        peer.Advance(TimeSpan.FromMilliseconds(10));

        // Segments 0 and 2 lost.
        peer.Send(peer.SackAck(0, (1000, 2000), (3000, 6000)));
        var repairs = peer.Drain();
        Assert.Equal([0L, 2000], repairs.Select(r => peer.OffsetOf(r.Segment)));
        Assert.Equal(2, peer.Tcb.Statistics.Retransmissions);
    }

    [Fact]
    public void Without_sack_three_duplicate_acks_trigger_newreno_recovery()
    {
        var peer = ScriptedPeer.ActiveOpen(peerOptions: ScriptedPeer.DefaultPeerOptions with { SackPermitted = false });
        Assert.False(peer.Tcb.SackEnabled);
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 8000));
        Assert.Equal(8, peer.Drain().Count);
        peer.Advance(TimeSpan.FromMilliseconds(10));

        // Segments 0 and 3 lost: duplicate ACKs for 1, 2.
        peer.Send(peer.Ack(0));
        peer.Send(peer.Ack(0));
        peer.ExpectNothing();
        peer.Send(peer.Ack(0));
        Assert.Equal(peer.Seq(0), peer.Expect().Segment.SequenceNumber);
        Assert.Equal(1, peer.Tcb.Statistics.FastRetransmits);

        // More duplicates (segments 4..7) let new data out while the hole is repaired.
        for (var i = 0; i < 4; i++)
        {
            peer.Send(peer.Ack(0));
        }

        var meanwhile = peer.Drain();
        Assert.All(meanwhile, m => Assert.True(peer.OffsetOf(m.Segment) >= 8000));

        // Partial ACK up to the second hole: it is retransmitted at once (RFC 6582).
        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.Ack(3000));
        Assert.Contains(peer.Drain(), s => peer.OffsetOf(s.Segment) == 3000);
        Assert.Equal(1, peer.Tcb.Statistics.FastRetransmits);
        Assert.Equal(0, peer.Tcb.Statistics.Timeouts);
    }

    [Fact]
    public void Tail_loss_probe_retransmits_the_last_segment_before_the_timeout()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 3000));
        Assert.Equal(3, peer.Drain().Count);

        // Probe timeout 2·SRTT = 20 ms (more than one segment in flight), well before the 200 ms RTO.
        Assert.Equal(TimeSpan.FromMilliseconds(20), peer.AdvanceToNextTimeout());
        var (probe, payload) = peer.Expect();
        Assert.Equal(peer.Seq(2000), probe.SequenceNumber);
        Assert.Equal(ScriptedPeer.Pattern(2000, 1000), payload);
        Assert.Equal(1, peer.Tcb.Statistics.TailLossProbes);

        // Its SACK reveals the holes before it (both sent an RTT before the probe: lost at once), which are
        // repaired without a timeout: PRR allows the delivered segment plus one.
        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.SackAck(0, (2000, 3000)));
        Assert.Equal([0L, 1000], peer.Drain().Select(r => peer.OffsetOf(r.Segment)));
        peer.Send(peer.Ack(3000));
        Assert.Equal(0, peer.Tcb.Statistics.Timeouts);
    }

    [Fact]
    public void Tail_loss_probe_sends_new_data_when_the_peer_window_allows()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 12_000));
        Assert.Equal(10, peer.Drain().Count); // The initial window.
        peer.AdvanceToNextTimeout();
        var (probe, payload) = peer.Expect();
        Assert.Equal(peer.Seq(10_000), probe.SequenceNumber);
        Assert.Equal(ScriptedPeer.Pattern(10_000, 1000), payload);
        peer.ExpectNothing();
    }

    [Fact]
    public void Reneged_sack_data_is_retransmitted()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 4000));
        Assert.Equal(4, peer.Drain().Count);
        peer.Advance(TimeSpan.FromMilliseconds(10));

        // Segments 0 and 1 acknowledged, 3 SACKed (2 missing).
        peer.Send(peer.SackAck(2000, (3000, 4000)));
        peer.Drain();

        // The receiver then acknowledges 2 but drops 3 from its buffer (reneging): the ACK reaches the SACKed
        // segment without covering it.
        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.Ack(3000));
        peer.ExpectNothing();

        // The sender never freed segment 3; it is resent after a short timer.
        peer.AdvanceToNextTimeout();
        var (segment, payload) = peer.Expect();
        Assert.Equal(peer.Seq(3000), segment.SequenceNumber);
        Assert.Equal(ScriptedPeer.Pattern(3000, 1000), payload);
        peer.Send(peer.Ack(4000));
        Assert.Equal(4000, peer.Tcb.Statistics.BytesAcked);
    }

    [Fact]
    public void Spurious_fast_retransmit_is_undone_by_dsack()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 10_000));
        peer.Drain();
        var before = peer.Tcb.Statistics.CongestionWindow;
        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.SackAck(0, (1000, 5000)));
        Assert.Equal(peer.Seq(0), peer.Expect().Segment.SequenceNumber);
        Assert.True(peer.Tcb.Statistics.CongestionWindow < before);

        // The original was only delayed: everything arrives, and the retransmission is reported duplicate.
        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.SackAck(10_000, (0, 1000)));
        var s = peer.Tcb.Statistics;
        Assert.Equal(1, s.DsacksReceived);
        Assert.Equal(1, s.SpuriousRecoveriesUndone);
        Assert.True(s.CongestionWindow >= before);
        Assert.True(s.SlowStartThreshold > 1_000_000);
    }
}
