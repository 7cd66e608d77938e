using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Loss recovery alone: episodes, PRR (RFC 6937), NewReno duplicate ACKs (RFC 6582) and undo of a spurious reduction.</summary>
public sealed class LossRecoveryTests
{
    private const int Mss = 1000;
    private static readonly TimeSpan T0 = TimeSpan.FromSeconds(1);

    private static (LossRecovery Recovery, CongestionController Cc, SackScoreboard Scoreboard) Setup(int segments = 20)
    {
        var cc = CongestionController.Create(CongestionControlAlgorithm.NewReno, Mss);
        cc.Cwnd = segments * Mss;
        var sb = new SackScoreboard();
        for (var i = 0; i < segments; i++)
        {
            sb.Add(new SentSegment { Start = 1 + (Mss * i), Length = Mss, SentAt = T0 });
        }

        return (new LossRecovery(cc), cc, sb);
    }

    [Fact]
    public void Fast_recovery_reduces_the_window_and_ends_at_ssthresh()
    {
        var (recovery, cc, _) = Setup();
        recovery.EnterFast(una: 1, nxt: 1 + (20 * Mss), noCut: false, T0);
        Assert.Equal(RecoveryMode.Fast, recovery.Mode);
        Assert.Equal(1 + (20 * Mss), recovery.RecoveryPoint);
        Assert.Equal(10 * Mss, cc.Ssthresh); // NewReno: half the flight.
        recovery.Exit(Mss);
        Assert.False(recovery.Active);
        Assert.Equal(10 * Mss, cc.Cwnd);
    }

    [Fact]
    public void An_episode_without_cut_leaves_the_window_alone()
    {
        var (recovery, cc, _) = Setup();
        recovery.EnterFast(una: 1, nxt: 1 + (20 * Mss), noCut: true, T0);
        Assert.True(recovery.NoCut);
        recovery.Exit(Mss);
        Assert.Equal(20 * Mss, cc.Cwnd);
    }

    [Fact]
    public void Prr_sends_in_proportion_to_deliveries_while_pipe_exceeds_ssthresh()
    {
        var (recovery, cc, _) = Setup();
        recovery.EnterFast(una: 1, nxt: 1 + (20 * Mss), noCut: false, T0);
        // First ACK delivers nothing: the fast retransmission itself is still allowed.
        recovery.ProportionalRateReduction(delivered: 0, pipe: 19 * Mss, Mss);
        Assert.Equal(20 * Mss, cc.Cwnd);
        recovery.OnRetransmitted(Mss);
        // Two segments delivered, pipe 17: ceil(2000 * 10000 / 20000) - 1000 = 0 more.
        recovery.ProportionalRateReduction(delivered: 2 * Mss, pipe: 17 * Mss, Mss);
        Assert.Equal(17 * Mss, cc.Cwnd);
        // Pipe below ssthresh: slow-start reduction bound, at most ssthresh - pipe.
        recovery.ProportionalRateReduction(delivered: Mss, pipe: 9 * Mss, Mss);
        Assert.Equal(10 * Mss, cc.Cwnd);
    }

    [Fact]
    public void Three_duplicate_acks_mark_the_oldest_segment_lost_and_each_counts_as_delivered()
    {
        var (recovery, _, sb) = Setup();
        long delivered = 0;
        Assert.False(recovery.OnAckWithoutSack(sb, 1, 1, isDuplicate: true, 0, Mss, ref delivered));
        Assert.False(recovery.OnAckWithoutSack(sb, 1, 1, isDuplicate: false, 0, Mss, ref delivered));
        Assert.False(recovery.OnAckWithoutSack(sb, 1, 1, isDuplicate: true, 0, Mss, ref delivered));
        Assert.True(recovery.OnAckWithoutSack(sb, 1, 1, isDuplicate: true, 0, Mss, ref delivered));
        Assert.Equal(3 * Mss, delivered);
        Assert.Equal(3, recovery.RenoSacked);
        Assert.Equal(1, sb.LostPending);
        Assert.True(SackScoreboard.IsLostPending(sb.First.Flags));
        Assert.Equal((20 - 1 - 3) * Mss, recovery.Pipe(sb, Mss));
    }

    [Fact]
    public void A_partial_ack_in_fast_recovery_marks_the_next_hole_lost()
    {
        var (recovery, _, sb) = Setup();
        recovery.EnterFast(una: 1, nxt: 1 + (20 * Mss), noCut: false, T0);
        sb.RemoveFirst();
        long delivered = 0;
        Assert.False(recovery.OnAckWithoutSack(sb, 1 + Mss, 1, isDuplicate: false, 1, Mss, ref delivered));
        Assert.True(sb.First.Has(SentSegmentFlags.Lost));
    }

    [Fact]
    public void Dsacks_for_every_retransmission_undo_the_reduction()
    {
        var (recovery, cc, sb) = Setup();
        recovery.EnterFast(una: 1, nxt: 1 + (20 * Mss), noCut: false, T0);
        sb.SetFlags(ref sb[5], SentSegmentFlags.Lost);
        recovery.OnRetransmitted(Mss);
        recovery.OnRetransmitted(Mss);
        Assert.False(recovery.OnDsack(1, 1 + Mss, Mss, sb));
        Assert.True(recovery.Active);
        Assert.True(recovery.OnDsack(1 + Mss, 1 + (2 * Mss), Mss, sb));
        Assert.False(recovery.Active);
        Assert.Equal(20 * Mss, cc.Cwnd);
        Assert.Equal(CongestionController.InitialSsthresh, cc.Ssthresh);
        Assert.Equal(0, sb.LostPending);
        Assert.False(recovery.OnDsack(1, 1 + Mss, Mss, sb)); // Once.
    }

    [Fact]
    public void A_dsack_below_the_episode_start_undoes_nothing()
    {
        var (recovery, _, sb) = Setup();
        recovery.EnterFast(una: 5001, nxt: 1 + (20 * Mss), noCut: false, T0);
        recovery.OnRetransmitted(Mss);
        Assert.False(recovery.OnDsack(1, 1 + Mss, Mss, sb));
        Assert.True(recovery.Active);
    }

    [Fact]
    public void A_timeout_episode_resets_the_duplicate_ack_count()
    {
        var (recovery, _, sb) = Setup();
        long delivered = 0;
        recovery.OnAckWithoutSack(sb, 1, 1, isDuplicate: true, 0, Mss, ref delivered);
        recovery.EnterTimeout(nxt: 1 + (20 * Mss));
        Assert.Equal(RecoveryMode.Timeout, recovery.Mode);
        Assert.Equal(0, recovery.RenoSacked);
    }
}
