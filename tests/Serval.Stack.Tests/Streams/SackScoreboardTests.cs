using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>The SACK scoreboard alone: its totals follow every flag change, SACK blocks mark whole segments, losses are found.</summary>
public sealed class SackScoreboardTests
{
    private static readonly TimeSpan T0 = TimeSpan.FromSeconds(1);

    /// <summary>Ten segments of 100 octets from position 1, sent 1 ms apart.</summary>
    private static SackScoreboard Ten()
    {
        var sb = new SackScoreboard();
        for (var i = 0; i < 10; i++)
        {
            sb.Add(new SentSegment { Start = 1 + (100 * i), Length = 100, SentAt = T0 + TimeSpan.FromMilliseconds(i) });
        }

        return sb;
    }

    private static RackLossDetector Rack() => new(new RttEstimator(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(60)));

    [Fact]
    public void Segments_added_are_in_flight_and_leave_it_when_acknowledged_or_trimmed()
    {
        var sb = Ten();
        Assert.Equal(10, sb.Count);
        Assert.Equal(1000, sb.InFlight);
        sb.RemoveFirst();
        Assert.Equal(900, sb.InFlight);
        Assert.Equal(40, sb.TrimFirst(141));
        Assert.Equal(141, sb.First.Start);
        Assert.Equal(60, sb.First.Length);
        Assert.Equal(860, sb.InFlight);
        sb.Clear();
        Assert.Equal(0, sb.Count);
        Assert.Equal(0, sb.InFlight);
    }

    [Fact]
    public void Sack_blocks_mark_only_segments_wholly_inside_them_and_count_new_bytes_once()
    {
        var sb = Ten();
        var rack = Rack();
        // [201, 450): segments at 201 and 301 are inside, 401 only partly.
        Assert.Equal(200, sb.ApplySackBlocks([201], [450], rack, T0 + TimeSpan.FromMilliseconds(50)));
        Assert.Equal(200, sb.SackedBytes);
        Assert.Equal(800, sb.InFlight);
        Assert.True(sb[2].Has(SentSegmentFlags.Sacked));
        Assert.False(sb[4].Has(SentSegmentFlags.Sacked));
        Assert.True(rack.IsValid);

        // The same block again, then grown: only the new segment counts.
        Assert.Equal(0, sb.ApplySackBlocks([201], [450], rack, T0 + TimeSpan.FromMilliseconds(51)));
        Assert.Equal(100, sb.ApplySackBlocks([201], [501], rack, T0 + TimeSpan.FromMilliseconds(52)));
        Assert.Equal(300, sb.SackedBytes);
    }

    [Fact]
    public void Reneging_clears_every_sack_mark()
    {
        var sb = Ten();
        sb.ApplySackBlocks([1], [301], Rack(), T0);
        Assert.True(sb.FirstIsSacked);
        sb.ClearSackMarks();
        Assert.False(sb.FirstIsSacked);
        Assert.Equal(0, sb.SackedBytes);
        Assert.Equal(1000, sb.InFlight);
    }

    [Fact]
    public void Lost_segments_leave_the_pipe_until_retransmitted_and_are_found_in_order()
    {
        var sb = Ten();
        sb.SetFlags(ref sb[3], SentSegmentFlags.Lost);
        sb.SetFlags(ref sb[1], SentSegmentFlags.Lost);
        Assert.Equal(2, sb.LostPending);
        Assert.Equal(800, sb.InFlight);
        Assert.Equal(101, sb.FirstLostPosition(none: -1));

        var i = sb.FindFirstLostPending(una: 1);
        Assert.Equal(1, i);
        sb.OnRetransmit(ref sb[i], T0 + TimeSpan.FromMilliseconds(100), repair: true);
        Assert.Equal(1, sb.LostPending);
        Assert.Equal(900, sb.InFlight);
        Assert.Equal(1, sb.EverRetransmitted);
        Assert.Equal(201, sb.HighestRetransmittedEnd);
        Assert.Equal(3, sb.FindFirstLostPending(una: 1));
    }

    [Fact]
    public void A_timeout_marks_everything_not_sacked_lost_and_undo_takes_the_marks_back()
    {
        var sb = Ten();
        sb.ApplySackBlocks([501], [601], Rack(), T0);
        sb.MarkUnsackedLost();
        Assert.Equal(9, sb.LostPending);
        Assert.Equal(0, sb.InFlight);
        sb.ClearPendingLosses();
        Assert.Equal(0, sb.LostPending);
        Assert.Equal(900, sb.InFlight);
    }

    [Fact]
    public void Splitting_a_lost_segment_leaves_both_halves_lost()
    {
        var sb = Ten();
        sb.SetFlags(ref sb[0], SentSegmentFlags.Lost | SentSegmentFlags.EverRetransmitted);
        sb.SplitLost(0, 60);
        Assert.Equal(11, sb.Count);
        Assert.Equal(2, sb.LostPending);
        Assert.Equal(2, sb.EverRetransmitted);
        Assert.Equal(60, sb[0].Length);
        Assert.Equal(61, sb[1].Start);
        Assert.Equal(40, sb[1].Length);
    }

    [Fact]
    public void A_sacked_run_described_by_the_last_blocks_is_skipped_in_one_step()
    {
        var sb = Ten();
        sb.ApplySackBlocks([201], [701], Rack(), T0);
        Assert.Equal(5, sb.SkipSackedRun(2)); // Resume before the segment holding the block's last octet.
        Assert.Equal(1, sb.SkipSackedRun(1)); // Not SACKed by a cached block: no skip.
    }
}
