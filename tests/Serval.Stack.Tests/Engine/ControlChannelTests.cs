using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>A SAL flow's control channel alone: the single slot, its timer and backoff, the RTT estimate, the vernos.</summary>
public sealed class ControlChannelTests
{
    private static readonly TimeSpan T0 = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    private static ControlChannel New(uint iss = 100) => new(iss, Second, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(60));

    [Fact]
    public void The_syn_consumes_the_iss_and_later_packets_take_the_next_vernos()
    {
        var c = New();
        Assert.Equal(100u, c.SndNxt);
        c.OnSynSent();
        Assert.Equal(101u, c.SndNxt);
        Assert.Equal(101u, c.TakeVerno());
        Assert.Equal(102u, c.SndNxt);
        c.OnPeerVerno(7);
        Assert.Equal(8u, c.RcvNxt);
        c.OnHandshakeAcknowledged();
        Assert.Equal(101u, c.SndUna);
    }

    [Fact]
    public void A_queued_packet_is_due_after_the_rto_and_backs_off_on_each_retransmission()
    {
        var c = New();
        c.Queue(SalControlFlags.Fin, 101, T0);
        Assert.True(c.Pending);
        Assert.True(c.Holds(SalControlFlags.Fin));
        Assert.False(c.Holds(SalControlFlags.Rsyn));
        Assert.Equal(T0 + Second, c.RetransmitAt);
        Assert.False(c.RetransmissionDue(T0 + Second - TimeSpan.FromTicks(1)));
        Assert.True(c.RetransmissionDue(T0 + Second));

        c.OnRetransmitted(T0 + Second);
        Assert.Equal(1, c.Retransmits);
        Assert.Equal(T0 + Second + (2 * Second), c.RetransmitAt);
        c.OnRetransmitted(T0 + (3 * Second));
        Assert.Equal(T0 + (3 * Second) + (4 * Second), c.RetransmitAt);
    }

    [Fact]
    public void A_new_packet_merges_the_old_flags_and_restarts_the_backoff()
    {
        var c = New();
        c.Queue(SalControlFlags.Fin, 101, T0);
        c.OnRetransmitted(T0 + Second);
        c.Queue(SalControlFlags.Rsyn | SalControlFlags.Ack, 102, T0 + (2 * Second));
        Assert.Equal(SalControlFlags.Rsyn | SalControlFlags.Ack | SalControlFlags.Fin, c.Flags);
        Assert.Equal(102u, c.Verno);
        Assert.Equal(0, c.Retransmits);
        Assert.Equal(T0 + (3 * Second), c.RetransmitAt);
    }

    [Fact]
    public void An_acknowledgement_frees_the_slot_and_samples_the_rtt_unless_retransmitted()
    {
        var c = New();
        c.Queue(SalControlFlags.Fin, 101, T0);
        Assert.False(c.IsAcknowledgedBy(101));
        Assert.True(c.IsAcknowledgedBy(102));
        c.Acknowledge(102, T0 + TimeSpan.FromMilliseconds(80));
        Assert.False(c.Pending);
        Assert.Equal(102u, c.SndUna);
        Assert.True(c.Rtt.HasSample);
        Assert.Equal(TimeSpan.FromMilliseconds(80), c.Rtt.SmoothedRtt);
        Assert.Equal(TimeSpan.FromMilliseconds(240), c.Rto); // 80 + 4 · 40

        c.Queue(SalControlFlags.Rsyn, 102, T0 + Second);
        c.OnRetransmitted(T0 + (2 * Second));
        c.Acknowledge(103, T0 + (2 * Second) + TimeSpan.FromMilliseconds(10));
        Assert.Equal(TimeSpan.FromMilliseconds(80), c.Rtt.SmoothedRtt); // Karn: no sample from a retransmitted packet.
    }

    [Fact]
    public void A_held_packet_starts_its_timer_when_it_leaves()
    {
        var c = New();
        c.Queue(SalControlFlags.Syn, 100, T0);
        c.OnRetransmitted(T0 + Second);
        c.Restart(T0 + (5 * Second));
        Assert.Equal(0, c.Retransmits);
        Assert.Equal(T0 + (6 * Second), c.RetransmitAt);
        c.RetransmitNow(T0 + (5 * Second));
        Assert.True(c.RetransmissionDue(T0 + (5 * Second)));
    }

    [Fact]
    public void The_backoff_stops_at_the_maximum()
    {
        Assert.Equal(TimeSpan.FromSeconds(60), RttEstimator.BackedOff(Second, 10, TimeSpan.FromSeconds(60)));
        Assert.Equal(TimeSpan.FromSeconds(8), RttEstimator.BackedOff(Second, 3, TimeSpan.FromSeconds(60)));
    }

    [Fact]
    public void An_owed_rsyn_ack_has_its_own_timer_beside_the_slot()
    {
        var c = New();
        c.Queue(SalControlFlags.Rsyn, 101, T0);
        c.OweRsynAck(T0);
        Assert.True(c.RsynAckOwed);
        Assert.Equal(T0 + Second, c.RsynAckAt);
        Assert.False(c.RsynAckDue(T0));
        Assert.True(c.RsynAckDue(T0 + Second));
        c.OnRsynAckRetransmitted(T0 + Second);
        Assert.Equal(1, c.RsynAckRetransmits);
        Assert.Equal(T0 + (3 * Second), c.RsynAckAt);
        Assert.True(c.Holds(SalControlFlags.Rsyn)); // Our own RSYN stays in the slot.
        c.OnRsynAckAcknowledged();
        Assert.False(c.RsynAckOwed);
        Assert.False(c.RsynAckDue(T0 + (10 * Second)));
    }
}
