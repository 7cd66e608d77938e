using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Pacing alone: the rate from the congestion state, the token bucket and its deadline.</summary>
public sealed class PacerTests
{
    private static readonly TimeSpan T0 = TimeSpan.FromSeconds(1);

    [Fact]
    public void Without_a_rate_every_segment_goes()
    {
        var rtt = new RttEstimator(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(60));
        var cc = CongestionController.Create(CongestionControlAlgorithm.Cubic, 1000);
        Assert.Equal(0, Pacer.Rate(enabled: true, rtt, cc, 1000)); // No RTT sample yet.
        rtt.OnSample(TimeSpan.FromMilliseconds(10));
        Assert.Equal(0, Pacer.Rate(enabled: false, rtt, cc, 1000));
        var pacer = new Pacer();
        Assert.True(pacer.Allows(T0, rate: 0, mss: 1000));
    }

    [Fact]
    public void The_rate_is_the_window_per_rtt_with_the_slow_start_gain()
    {
        var rtt = new RttEstimator(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(60));
        rtt.OnSample(TimeSpan.FromMilliseconds(10));
        var cc = CongestionController.Create(CongestionControlAlgorithm.NewReno, 1000);
        Assert.True(cc.InSlowStart);
        Assert.Equal(2.0 * cc.Cwnd / 0.010, Pacer.Rate(enabled: true, rtt, cc, 1000), 6);
    }

    [Fact]
    public void An_empty_bucket_says_when_a_segment_may_go()
    {
        var pacer = new Pacer();
        const double rate = 1_000_000; // 1 MB/s: a 1000-byte segment per millisecond; burst 2 segments.
        Assert.True(pacer.Allows(T0, rate, 1000));
        pacer.Consume(1000);
        Assert.True(pacer.Allows(T0, rate, 1000));
        pacer.Consume(1000);
        Assert.False(pacer.Allows(T0, rate, 1000));
        Assert.InRange(pacer.Deadline!.Value - T0, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1) + TimeSpan.FromTicks(1));
        Assert.True(pacer.Allows(pacer.Deadline.Value, rate, 1000));
        pacer.ClearDeadline();
        Assert.Null(pacer.Deadline);
    }
}
