using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// RFC 5961 adapted to the SAL, one defence per test at the transport level: bare TCP RSTs never reset, SYNs in a
/// synchronized state and unacceptable ACKs get rate-limited challenge ACKs, a FIN counts only exactly in order,
/// and everything dropped is counted by kind.
/// </summary>
public sealed class SpoofDefenceTests
{
    [Fact]
    public void Transport_reset_at_the_expected_sequence_number_does_not_reset_and_is_challenged()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(100);
        peer.Drain();
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext, Flags = TcpFlags.Rst });
        Assert.Equal(StreamState.Established, peer.Tcb.State);
        Assert.Equal(StreamError.None, peer.Tcb.Error);
        Assert.Equal(100, peer.Tcb.BytesAvailable);
        var (ack, _) = peer.Expect();
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(peer.PeerNext, ack.AckNumber);
        Assert.Equal(1, peer.Tcb.Statistics.SpoofTransportResets);
        Assert.Equal(1, peer.Tcb.Statistics.ChallengeAcksSent);

        // Still a working connection.
        peer.SendData(50);
        Assert.Equal(150, peer.Tcb.BytesAvailable);
    }

    [Fact]
    public void Transport_reset_outside_the_window_is_dropped_silently_and_counted()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext + 1_000_000, Flags = TcpFlags.Rst });
        peer.ExpectNothing();
        Assert.Equal(1, peer.Tcb.Statistics.SpoofTransportResets);
        Assert.Equal(0, peer.Tcb.Statistics.ChallengeAcksSent);
    }

    [Fact]
    public void Transport_reset_is_honoured_only_when_the_options_allow_it()
    {
        var peer = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { AcceptTransportResets = true });
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext, Flags = TcpFlags.Rst });
        Assert.Equal(StreamError.Reset, peer.Tcb.Error);
        Assert.Equal(0, peer.Tcb.Statistics.SpoofTransportResets);
    }

    [Fact]
    public void Challenge_acks_are_rate_limited_per_connection()
    {
        var peer = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { ChallengeAcksPerSecond = 5 });
        peer.Drain();
        var sent = 0;
        for (var i = 0; i < 100; i++)
        {
            peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext + 10, Flags = TcpFlags.Rst });
            sent += peer.Drain().Count;
        }

        Assert.Equal(5, sent);
        Assert.Equal(5, peer.Tcb.Statistics.ChallengeAcksSent);
        Assert.Equal(95, peer.Tcb.Statistics.ChallengeAcksSuppressed);

        // A second later the budget is back.
        peer.Advance(TimeSpan.FromSeconds(1));
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext + 10, Flags = TcpFlags.Rst });
        Assert.Single(peer.Drain());

        // A second connection has its own budget (no shared counter to probe, CVE-2016-5696).
        var other = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { ChallengeAcksPerSecond = 5 });
        other.Drain();
        other.Send(new TcpRepr { SequenceNumber = other.PeerNext + 10, Flags = TcpFlags.Rst });
        Assert.Single(other.Drain());
    }

    [Fact]
    public void Syn_on_a_synchronized_connection_gets_a_challenge_ack_and_changes_nothing()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(100);
        peer.Drain();
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext + 7, Flags = TcpFlags.Syn, Window = 1000 });
        var (ack, _) = peer.Expect();
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(peer.PeerNext, ack.AckNumber);
        Assert.Equal(StreamState.Established, peer.Tcb.State);
        Assert.Equal(1, peer.Tcb.Statistics.SpoofSyns);
    }

    [Fact]
    public void Forged_fin_inside_the_window_does_not_truncate_the_stream()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Drain();

        // FIN at offset 500 with a perfectly acceptable ACK: only its position gives it away.
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerSeq(500), Flags = TcpFlags.Ack | TcpFlags.Fin });
        Assert.Equal(1, peer.Tcb.Statistics.SpoofFins);
        peer.SendData(1000);
        Assert.Equal(1000, peer.Tcb.BytesAvailable);
        Assert.False(peer.Tcb.PeerFinReceived);
        Assert.Equal(StreamState.Established, peer.Tcb.State);
        var buffer = new byte[2000];
        Assert.Equal(1000, peer.Tcb.Read(buffer));
        Assert.Equal(ScriptedPeer.Pattern(0, 1000), buffer[..1000]);
        Assert.False(peer.Tcb.ReadsCompleted);
    }

    [Fact]
    public void Out_of_order_fin_is_ignored_and_the_retransmitted_fin_closes()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Drain();

        // Data 0–1000 is lost; 1000–2000 arrives with the FIN.
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerSeq(1000), Flags = TcpFlags.Ack | TcpFlags.Fin }, ScriptedPeer.Pattern(1000, 1000));
        Assert.False(peer.Tcb.PeerFinReceived);
        Assert.Equal(1, peer.Tcb.Statistics.SpoofFins);

        // The gap is repaired: all data is there, the FIN is still owed.
        peer.Send(peer.Ack(), ScriptedPeer.Pattern(0, 1000));
        Assert.Equal(2000, peer.Tcb.BytesAvailable);
        Assert.False(peer.Tcb.PeerFinReceived);
        var acks = peer.Drain();
        Assert.Equal(peer.PeerSeq(2000), acks[^1].Segment.AckNumber);

        // The peer retransmits its FIN (alone, after the cumulative ACK trimmed its data).
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerSeq(2000), Flags = TcpFlags.Ack | TcpFlags.Fin });
        Assert.True(peer.Tcb.PeerFinReceived);
        Assert.Equal(StreamState.CloseWait, peer.Tcb.State);
        Assert.Equal(peer.PeerSeq(2001), peer.Expect().Segment.AckNumber);
    }

    [Fact]
    public void Fin_on_a_segment_with_an_unacceptable_ack_is_dropped()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Drain();
        peer.Send(peer.Ack(5000) with { Flags = TcpFlags.Ack | TcpFlags.Fin }, ScriptedPeer.Pattern(0, 100));
        Assert.False(peer.Tcb.PeerFinReceived);
        Assert.Equal(0, peer.Tcb.BytesAvailable);
        Assert.Equal(1, peer.Tcb.Statistics.AckUnacceptable);
        Assert.Equal(0, peer.Tcb.Statistics.SpoofFins);
    }

    [Fact]
    public void Data_with_an_ack_above_snd_nxt_or_too_old_is_dropped_and_counted()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(new byte[3000]);
        peer.Drain();

        // Above SND.NXT.
        peer.Send(peer.Ack(3001), ScriptedPeer.Pattern(0, 100));
        Assert.Equal(0, peer.Tcb.BytesAvailable);

        // Below SND.UNA − MAX.SND.WND (65535 without scaling).
        peer.Send(peer.Ack(-70_000), ScriptedPeer.Pattern(0, 100));
        Assert.Equal(0, peer.Tcb.BytesAvailable);

        // No ACK bit at all.
        peer.Send(peer.Ack() with { Flags = TcpFlags.None }, ScriptedPeer.Pattern(0, 100));
        Assert.Equal(0, peer.Tcb.BytesAvailable);
        Assert.Equal(3, peer.Tcb.Statistics.AckUnacceptable);
        Assert.Equal(3000, peer.Tcb.BytesUnacknowledged);

        // The genuine segment is taken.
        peer.SendData(100, 3000);
        Assert.Equal(100, peer.Tcb.BytesAvailable);
        Assert.Equal(0, peer.Tcb.BytesUnacknowledged);
    }

    [Fact]
    public void Segments_beyond_the_window_are_counted_but_old_duplicates_are_not()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(1000);
        peer.Drain();

        // A retransmission of data we have: D-SACK, not an attack.
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerSeq(0) }, ScriptedPeer.Pattern(0, 1000));
        Assert.Single(peer.Drain());
        Assert.Equal(0, peer.Tcb.Statistics.DataOutOfWindow);

        // Beyond the 32 KiB window, and far behind anything we ever advertised.
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerSeq(100_000) }, new byte[100]);
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerSeq(-1_000_000) }, new byte[100]);
        Assert.Equal(2, peer.Tcb.Statistics.DataOutOfWindow);
        Assert.Equal(2, peer.Tcb.Statistics.ChallengeAcksSent);
        Assert.Equal(1000, peer.Tcb.BytesAvailable);
    }

    [Fact]
    public void Rejected_segments_do_not_keep_a_dead_connection_alive()
    {
        var options = ScriptedPeer.TestOptions with { KeepAlive = TimeSpan.FromSeconds(10), KeepAliveInterval = TimeSpan.FromSeconds(1), KeepAliveProbes = 2 };
        var peer = ScriptedPeer.ActiveOpen(options);
        peer.Drain();
        var deadline = peer.Tcb.NextTimeout;
        peer.Advance(TimeSpan.FromSeconds(5));
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext + 5, Flags = TcpFlags.Rst });
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerSeq(1_000_000) }, new byte[10]);
        peer.Drain();
        Assert.Equal(deadline, peer.Tcb.NextTimeout);
    }
}
