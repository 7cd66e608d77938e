using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// Resets received in each state (RFC 9293 §3.10.7.4 with RFC 5961's checks) and abortive close. Transport resets
/// are honoured only with <see cref="StreamOptions.AcceptTransportResets"/> (a connection without a SAL);
/// <see cref="SpoofDefenceTests"/> covers the default.
/// </summary>
public sealed class ResetTests
{
    private static readonly StreamOptions Options = ScriptedPeer.TestOptions with { AcceptTransportResets = true };

    /// <summary>Puts a connection into <paramref name="state"/> through the peer's and our actions.</summary>
    private static ScriptedPeer In(StreamState state)
    {
        var peer = ScriptedPeer.ActiveOpen(Options);
        switch (state)
        {
            case StreamState.Established:
                break;
            case StreamState.FinWait1:
                peer.Tcb.CompleteWrites();
                peer.Drain();
                break;
            case StreamState.FinWait2:
                peer.Tcb.CompleteWrites();
                peer.Drain();
                peer.Send(peer.Ack(1));
                break;
            case StreamState.Closing:
                peer.Tcb.CompleteWrites();
                peer.Drain();
                peer.SendData(0, 0, TcpFlags.Fin);
                break;
            case StreamState.CloseWait:
                peer.SendData(0, 0, TcpFlags.Fin);
                break;
            case StreamState.LastAck:
                peer.SendData(0, 0, TcpFlags.Fin);
                peer.Tcb.CompleteWrites();
                peer.Drain();
                break;
            case StreamState.TimeWait:
                peer.Tcb.CompleteWrites();
                peer.Drain();
                peer.SendData(0, 1, TcpFlags.Fin);
                break;
        }

        peer.Drain();
        Assert.Equal(state, peer.Tcb.State);
        return peer;
    }

    public static TheoryData<StreamState> OpenStates() => new()
    {
        StreamState.Established,
        StreamState.FinWait1,
        StreamState.FinWait2,
        StreamState.Closing,
        StreamState.CloseWait,
        StreamState.LastAck,
    };

    [Theory]
    [MemberData(nameof(OpenStates))]
    public void Reset_with_the_expected_sequence_number_closes_the_connection(StreamState state)
    {
        var peer = In(state);
        peer.Tcb.Write(new byte[10]);
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext, Flags = TcpFlags.Rst });
        Assert.Equal(StreamState.Closed, peer.Tcb.State);
        Assert.Equal(StreamError.Reset, peer.Tcb.Error);
        Assert.True(peer.Tcb.Readable);
        Assert.True(peer.Tcb.Writable);
        Assert.Equal(0, peer.Tcb.Write(new byte[10]));
        Assert.Equal(0, peer.Tcb.Read(new byte[10]));
        peer.ExpectNothing();
        Assert.Null(peer.Tcb.NextTimeout);
    }

    [Theory]
    [MemberData(nameof(OpenStates))]
    public void Reset_inside_the_window_but_not_exact_gets_a_challenge_ack(StreamState state)
    {
        var peer = In(state);
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext + 100, Flags = TcpFlags.Rst });
        Assert.Equal(state, peer.Tcb.State);
        var (ack, _) = peer.Expect();
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(peer.PeerNext, ack.AckNumber);
    }

    [Theory]
    [MemberData(nameof(OpenStates))]
    public void Reset_outside_the_window_is_ignored(StreamState state)
    {
        var peer = In(state);
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext - 100_000, Flags = TcpFlags.Rst });
        Assert.Equal(state, peer.Tcb.State);
        peer.ExpectNothing();
    }

    [Fact]
    public void Reset_in_syn_received_closes_the_connection()
    {
        var tcb = new StreamConnection(Options, new SeededRandomSource(5), TimeSpan.Zero);
        Assert.True(tcb.OnSyn(ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 100, Flags = TcpFlags.Syn }, TimeSpan.Zero));
        tcb.CreateSynAck(TimeSpan.Zero);
        Assert.False(tcb.OnHandshakeAck(new TcpRepr { SequenceNumber = 101, Flags = TcpFlags.Rst }, default, TimeSpan.Zero));
        Assert.Equal(StreamState.Closed, tcb.State);
        Assert.Equal(StreamError.Reset, tcb.Error);
    }

    [Fact]
    public void Reset_in_time_wait_is_ignored()
    {
        var peer = In(StreamState.TimeWait);
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext, Flags = TcpFlags.Rst });
        Assert.Equal(StreamState.TimeWait, peer.Tcb.State);
        Assert.Equal(StreamError.None, peer.Tcb.Error);
    }

    [Fact]
    public void Reset_discards_unread_data()
    {
        var peer = In(StreamState.Established);
        peer.SendData(500);
        Assert.Equal(500, peer.Tcb.BytesAvailable);
        peer.Send(new TcpRepr { SequenceNumber = peer.PeerNext, Flags = TcpFlags.Rst });
        Assert.Equal(0, peer.Tcb.BytesAvailable);
    }

    [Theory]
    [MemberData(nameof(OpenStates))]
    public void Abort_sends_one_reset_and_closes(StreamState state)
    {
        var peer = In(state);
        peer.Tcb.Write(new byte[100]);
        peer.Tcb.Abort();
        Assert.Equal(StreamState.Closed, peer.Tcb.State);
        Assert.Equal(StreamError.Aborted, peer.Tcb.Error);
        var (rst, payload) = peer.Expect();
        Assert.True(rst.Has(TcpFlags.Rst));
        Assert.Empty(payload);
        Assert.Equal(peer.PeerNext, rst.AckNumber);
        peer.ExpectNothing();
        Assert.Null(peer.Tcb.NextTimeout);
    }

    [Fact]
    public void Abort_carries_the_next_sequence_number()
    {
        var peer = In(StreamState.Established);
        peer.Tcb.Write(new byte[3000]);
        peer.Drain();
        peer.Tcb.Abort();
        Assert.Equal(peer.Seq(3000), peer.Expect().Segment.SequenceNumber);
    }

    [Fact]
    public void Abort_in_syn_sent_sends_nothing()
    {
        var tcb = new StreamConnection(ScriptedPeer.TestOptions, new SeededRandomSource(5), TimeSpan.Zero);
        tcb.CreateSyn(TimeSpan.Zero);
        tcb.Abort();
        Assert.Equal(StreamError.Aborted, tcb.Error);
        Assert.False(tcb.TryPoll(TimeSpan.Zero, new byte[100], out _, out _));
    }

    [Fact]
    public void Abort_in_syn_received_resets_the_peer()
    {
        var tcb = new StreamConnection(ScriptedPeer.TestOptions, new SeededRandomSource(5), TimeSpan.Zero);
        tcb.OnSyn(ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 100, Flags = TcpFlags.Syn }, TimeSpan.Zero);
        tcb.CreateSynAck(TimeSpan.Zero);
        tcb.Abort();
        Assert.True(tcb.TryPoll(TimeSpan.Zero, new byte[100], out var rst, out _));
        Assert.True(rst.Has(TcpFlags.Rst));
        Assert.Equal(101u, rst.AckNumber);
    }

    [Fact]
    public void Segments_after_close_are_ignored()
    {
        var peer = In(StreamState.Established);
        peer.Tcb.Abort();
        peer.Drain();
        peer.SendData(100);
        peer.ExpectNothing();
        Assert.Equal(0, peer.Tcb.BytesAvailable);
        peer.Tcb.Abort(); // Idempotent.
        peer.ExpectNothing();
    }
}
