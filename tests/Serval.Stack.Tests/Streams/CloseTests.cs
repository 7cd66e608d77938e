using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Graceful close (RFC 9293 §3.6): half-close, both orders, simultaneous close, TIME-WAIT.</summary>
public sealed class CloseTests
{
    [Fact]
    public void Active_close_fin_follows_the_data_and_the_peer_fin_leads_to_time_wait()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 1500));
        peer.Tcb.CompleteWrites();
        Assert.Equal(StreamState.FinWait1, peer.Tcb.State);
        Assert.True(peer.Tcb.WritesCompleted);
        Assert.Equal(0, peer.Tcb.Write(new byte[1]));

        var sent = peer.Drain();
        Assert.Equal(2, sent.Count);
        Assert.False(sent[0].Segment.Has(TcpFlags.Fin));
        Assert.True(sent[1].Segment.Has(TcpFlags.Fin)); // Piggy-backed on the last data.
        Assert.Equal(500, sent[1].Payload.Length);

        peer.Send(peer.Ack(1501));
        Assert.Equal(StreamState.FinWait2, peer.Tcb.State);
        Assert.True(peer.Tcb.FinAcknowledged);
        Assert.False(peer.Tcb.PeerFinReceived);

        peer.SendData(0, 1501, TcpFlags.Fin);
        Assert.Equal(StreamState.TimeWait, peer.Tcb.State);
        Assert.True(peer.Tcb.PeerFinReceived);
        Assert.True(peer.Tcb.ReadsCompleted);
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(1), ack.AckNumber); // The FIN consumed one sequence number.
        Assert.Equal(StreamError.None, peer.Tcb.Error);
    }

    [Fact]
    public void Passive_close_reads_to_the_end_then_our_fin_closes()
    {
        var peer = ScriptedPeer.PassiveOpen();
        peer.SendData(300, 0, TcpFlags.Fin);
        Assert.Equal(StreamState.CloseWait, peer.Tcb.State);
        Assert.True(peer.Tcb.PeerFinReceived);
        Assert.False(peer.Tcb.ReadsCompleted); // 300 bytes still to read.
        Assert.True(peer.Tcb.Readable);
        var (ack, _) = peer.Expect(); // A FIN is acknowledged at once.
        Assert.Equal(peer.PeerSeq(301), ack.AckNumber);

        var buffer = new byte[1000];
        Assert.Equal(300, peer.Tcb.Read(buffer));
        Assert.True(peer.Tcb.ReadsCompleted);
        Assert.Equal(0, peer.Tcb.Read(buffer));

        // We may still write in CLOSE-WAIT.
        peer.Tcb.Write(ScriptedPeer.Pattern(0, 200));
        peer.Tcb.CompleteWrites();
        Assert.Equal(StreamState.LastAck, peer.Tcb.State);
        var (fin, data) = peer.Expect();
        Assert.True(fin.Has(TcpFlags.Fin));
        Assert.Equal(200, data.Length);
        peer.Send(peer.Ack(201));
        Assert.Equal(StreamState.Closed, peer.Tcb.State);
        Assert.Equal(StreamError.None, peer.Tcb.Error);
        Assert.True(peer.Tcb.FinAcknowledged);
        Assert.Null(peer.Tcb.NextTimeout);
    }

    [Fact]
    public void Simultaneous_close_goes_through_closing()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.CompleteWrites();
        var (fin, _) = peer.Expect();
        Assert.True(fin.Has(TcpFlags.Fin));

        // The peer's FIN crosses ours: it does not acknowledge our FIN yet.
        peer.SendData(0, 0, TcpFlags.Fin);
        Assert.Equal(StreamState.Closing, peer.Tcb.State);
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(1), ack.AckNumber);

        peer.Send(peer.Ack(1));
        Assert.Equal(StreamState.TimeWait, peer.Tcb.State);
        Assert.True(peer.Tcb.FinAcknowledged);
        Assert.True(peer.Tcb.ReadsCompleted);
    }

    [Fact]
    public void Fin_with_the_ack_of_our_fin_goes_straight_to_time_wait()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.CompleteWrites();
        peer.Drain();
        peer.SendData(0, 1, TcpFlags.Fin);
        Assert.Equal(StreamState.TimeWait, peer.Tcb.State);
    }

    [Fact]
    public void Half_closed_connection_keeps_receiving()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.CompleteWrites();
        peer.Drain();
        peer.Send(peer.Ack(1));
        Assert.Equal(StreamState.FinWait2, peer.Tcb.State);

        for (var i = 0; i < 10; i++)
        {
            peer.SendData(1000, 1);
        }

        Assert.Equal(10_000, peer.Tcb.BytesAvailable);
        Assert.Equal(peer.PeerSeq(10_000), peer.Drain()[^1].Segment.AckNumber);
        peer.SendData(0, 1, TcpFlags.Fin);
        Assert.Equal(StreamState.TimeWait, peer.Tcb.State);
        Assert.False(peer.Tcb.ReadsCompleted);
        peer.Tcb.Read(new byte[20_000]);
        Assert.True(peer.Tcb.ReadsCompleted);
    }

    [Fact]
    public void Retransmitted_peer_fin_in_time_wait_is_acknowledged_again()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.CompleteWrites();
        peer.Drain();
        peer.SendData(0, 1, TcpFlags.Fin);
        peer.Drain();
        peer.PeerNext -= 1;
        peer.SendData(0, 1, TcpFlags.Fin); // Our ACK was lost; the peer repeats its FIN.
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(1), ack.AckNumber);
        Assert.Equal(StreamState.TimeWait, peer.Tcb.State);
    }

    [Fact]
    public void Out_of_order_fin_is_ignored_until_the_peer_repeats_it_in_order()
    {
        // RFC 5961 adapted to the SAL: a FIN counts only exactly in order, so a forged one cannot truncate the stream.
        var peer = ScriptedPeer.ActiveOpen();
        peer.PeerNext = peer.PeerSeq(1000);
        peer.SendData(500, 0, TcpFlags.Fin);
        Assert.Equal(StreamState.Established, peer.Tcb.State);
        Assert.False(peer.Tcb.PeerFinReceived);
        peer.PeerNext = peer.PeerSeq(0);
        peer.SendData(1000);
        Assert.Equal(StreamState.Established, peer.Tcb.State);
        Assert.Equal(1500, peer.Tcb.BytesAvailable);
        Assert.Equal(peer.PeerSeq(1500), peer.Drain()[^1].Segment.AckNumber);
        peer.PeerNext = peer.PeerSeq(1500);
        peer.SendData(0, 0, TcpFlags.Fin);
        Assert.Equal(StreamState.CloseWait, peer.Tcb.State);
        Assert.Equal(peer.PeerSeq(1501), peer.Expect().Segment.AckNumber);
    }

    [Fact]
    public void Complete_writes_before_the_handshake_sends_the_fin_after_it()
    {
        var tcb = new StreamConnection(ScriptedPeer.TestOptions, new SeededRandomSource(4), TimeSpan.Zero);
        tcb.Write(new byte[10]);
        tcb.CompleteWrites();
        var syn = tcb.CreateSyn(TimeSpan.Zero);
        Assert.True(tcb.OnSynAck(ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 9, AckNumber = syn.SequenceNumber + 1, Flags = TcpFlags.Syn | TcpFlags.Ack }, TimeSpan.Zero));
        Assert.Equal(StreamState.FinWait1, tcb.State);
        Assert.True(tcb.TryPoll(TimeSpan.Zero, new byte[1000], out var s, out var n));
        Assert.True(s.Has(TcpFlags.Fin));
        Assert.Equal(10, n);
    }

    [Fact]
    public void Complete_writes_is_idempotent()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.CompleteWrites();
        peer.Tcb.CompleteWrites();
        Assert.Single(peer.Drain());
    }
}
