using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>RACK-TLP alone (RFC 8985): time-based loss marking, the reordering window and timer, D-SACK adaptation, probe state.</summary>
public sealed class RackLossDetectorTests
{
    private static readonly TimeSpan T0 = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Ms = TimeSpan.FromMilliseconds(1);

    private static (SackScoreboard Scoreboard, RackLossDetector Rack, RttEstimator Rtt) Setup(int segments = 10)
    {
        var rtt = new RttEstimator(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(60));
        rtt.OnSample(40 * Ms);
        var sb = new SackScoreboard();
        for (var i = 0; i < segments; i++)
        {
            sb.Add(new SentSegment { Start = 1 + (100 * i), Length = 100, SentAt = T0 + (i * Ms) });
        }

        return (sb, new RackLossDetector(rtt), rtt);
    }

    [Fact]
    public void Nothing_is_lost_before_a_segment_was_delivered()
    {
        var (sb, rack, _) = Setup();
        Assert.False(rack.IsValid);
        Assert.False(rack.DetectLoss(sb, T0 + TimeSpan.FromSeconds(10), inRecovery: false, mss: 100));
        Assert.Equal(0, sb.LostPending);
    }

    [Fact]
    public void Segments_sent_before_a_delivered_one_are_lost_after_its_rtt_plus_the_reordering_window()
    {
        var (sb, rack, _) = Setup();
        // Segment 5 (sent at T0+5 ms) SACKed at T0+45 ms: RACK RTT 40 ms; window = minRtt/4 = 10 ms.
        sb.ApplySackBlocks([501], [601], rack, T0 + (45 * Ms));
        Assert.Equal(10 * Ms, rack.ReorderWindow(inRecovery: false, sb.SackedBytes, 100));

        // Segment k (sent at T0+k ms) is lost once now ≥ T0 + k ms + 40 ms + 10 ms: at T0+52 ms, segments 0–2.
        Assert.True(rack.DetectLoss(sb, T0 + (52 * Ms), inRecovery: false, mss: 100));
        Assert.Equal(3, sb.LostPending);
        Assert.True(SackScoreboard.IsLostPending(sb[2].Flags));
        Assert.False(SackScoreboard.IsLostPending(sb[3].Flags));
        Assert.Equal(T0 + (53 * Ms), rack.ReorderDeadline);

        Assert.False(rack.ReorderTimerExpired(T0 + (52 * Ms)));
        Assert.True(rack.ReorderTimerExpired(T0 + (53 * Ms)));
        Assert.Null(rack.ReorderDeadline);
        Assert.True(rack.DetectLoss(sb, T0 + (55 * Ms), inRecovery: false, mss: 100));
        Assert.Equal(5, sb.LostPending);
    }

    [Fact]
    public void In_recovery_without_reordering_the_window_is_zero()
    {
        var (sb, rack, _) = Setup();
        sb.ApplySackBlocks([501], [601], rack, T0 + (45 * Ms));
        Assert.Equal(TimeSpan.Zero, rack.ReorderWindow(inRecovery: true, sb.SackedBytes, 100));
        Assert.Equal(TimeSpan.Zero, rack.ReorderWindow(inRecovery: false, 300, 100)); // DupThresh segments SACKed.
    }

    [Fact]
    public void A_dsack_widens_the_window_once_per_round_and_for_sixteen_recoveries()
    {
        var (_, rack, rtt) = Setup();
        Assert.True(rack.OnDsack(101, 201, una: 1, nxt: 1001));
        Assert.False(rack.OnDsack(101, 201, una: 1, nxt: 1001)); // The same report again.
        Assert.True(rack.OnDsack(201, 301, una: 1, nxt: 1001)); // Same round: no further widening.
        Assert.Equal(2, rack.ReorderWindowMultiplier);
        Assert.True(rack.ReorderingSeen);
        Assert.Equal(2 * rtt.MinRtt / 4, rack.ReorderWindow(inRecovery: true, 0, 100));

        Assert.True(rack.OnDsack(301, 401, una: 1001, nxt: 2001)); // Next round.
        Assert.Equal(3, rack.ReorderWindowMultiplier);
        for (var i = 0; i < 15; i++)
        {
            rack.OnRecoveryExit();
        }

        Assert.Equal(3, rack.ReorderWindowMultiplier);
        rack.OnRecoveryExit();
        Assert.Equal(1, rack.ReorderWindowMultiplier);
    }

    [Fact]
    public void The_window_never_exceeds_the_smoothed_rtt()
    {
        var (_, rack, rtt) = Setup();
        for (var round = 0; round < 20; round++)
        {
            rack.OnDsack(1 + round, 2 + round, una: 10 * round, nxt: (10 * round) + 5);
        }

        Assert.Equal(16, rack.ReorderWindowMultiplier);
        Assert.Equal(rtt.SmoothedRtt, rack.ReorderWindow(inRecovery: false, 0, 100));
    }

    [Fact]
    public void An_ambiguous_delivery_of_a_retransmission_is_ignored()
    {
        var (sb, rack, _) = Setup();
        sb.OnRetransmit(ref sb[0], T0 + (30 * Ms), repair: false);
        rack.OnDelivered(sb[0], T0 + (31 * Ms)); // 1 ms after the retransmission: below the minimum RTT.
        Assert.False(rack.IsValid);
    }

    [Fact]
    public void Probe_state_follows_request_send_and_acknowledgement()
    {
        var (_, rack, _) = Setup();
        Assert.False(rack.TakeProbeRequest());
        rack.RequestProbe();
        Assert.True(rack.TakeProbeRequest());
        Assert.False(rack.TakeProbeRequest());
        rack.OnProbeSent(nxt: 1001);
        Assert.True(rack.ProbeOutstanding);
        rack.OnCumulativeAck(901);
        Assert.True(rack.ProbeOutstanding);
        rack.OnCumulativeAck(1001);
        Assert.False(rack.ProbeOutstanding);
        rack.RequestProbe();
        rack.OnRetransmissionTimeout();
        Assert.False(rack.TakeProbeRequest());
    }
}
