using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>The handshake methods the SAL drives, and option negotiation (RFC 9293 §3.5, RFC 7323, RFC 2018).</summary>
public sealed class HandshakeTests
{
    internal static readonly TimeSpan T0 = TimeSpan.FromSeconds(1);

    private static StreamConnection New(StreamOptions? options = null, uint? iss = null) =>
        new(options ?? ScriptedPeer.TestOptions, new SeededRandomSource(9), T0, iss);

    [Fact]
    public void Syn_offers_the_configured_options_and_is_recreated_identically()
    {
        var tcb = New(StreamOptions.Default);
        var syn = tcb.CreateSyn(T0);
        Assert.Equal(TcpFlags.Syn, syn.Flags);
        Assert.Equal(tcb.InitialSequenceNumber, syn.SequenceNumber);
        Assert.Equal((ushort)1400, syn.MaxSegmentSize);
        Assert.Equal((byte)7, syn.WindowScale); // 4 MiB >> 7 fits 16 bits.
        Assert.True(syn.SackPermitted);
        Assert.NotNull(syn.Timestamp);
        Assert.Equal((ushort)65535, syn.Window); // Never scaled in a SYN.
        Assert.Equal(StreamState.SynSent, tcb.State);

        var again = tcb.CreateSyn(T0 + TimeSpan.FromSeconds(1));
        Assert.Equal(syn, again);
    }

    [Fact]
    public void Syn_without_optional_features_offers_only_mss()
    {
        var tcb = New(ScriptedPeer.TestOptions with { UseSack = false, UseTimestamps = false, UseWindowScale = false });
        var syn = tcb.CreateSyn(T0);
        Assert.Equal((ushort)1000, syn.MaxSegmentSize);
        Assert.Null(syn.WindowScale);
        Assert.False(syn.SackPermitted);
        Assert.Null(syn.Timestamp);
    }

    [Fact]
    public void Random_iss_comes_from_the_random_source()
    {
        var a = new StreamConnection(StreamOptions.Default, new SeededRandomSource(1), T0);
        var b = new StreamConnection(StreamOptions.Default, new SeededRandomSource(1), T0);
        var c = new StreamConnection(StreamOptions.Default, new SeededRandomSource(2), T0);
        Assert.Equal(a.InitialSequenceNumber, b.InitialSequenceNumber);
        Assert.NotEqual(a.InitialSequenceNumber, c.InitialSequenceNumber);
    }

    [Fact]
    public void Syn_ack_that_does_not_acknowledge_our_syn_is_rejected()
    {
        var tcb = New();
        var syn = tcb.CreateSyn(T0);
        var bad = ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 1, AckNumber = syn.SequenceNumber + 2, Flags = TcpFlags.Syn | TcpFlags.Ack };
        Assert.False(tcb.OnSynAck(bad, T0));
        Assert.False(tcb.OnSynAck(bad with { AckNumber = syn.SequenceNumber + 1, Flags = TcpFlags.Ack }, T0));
        Assert.Equal(StreamState.SynSent, tcb.State);
        Assert.True(tcb.OnSynAck(bad with { AckNumber = syn.SequenceNumber + 1 }, T0));
    }

    [Fact]
    public void Reset_acknowledging_our_syn_means_refused()
    {
        var tcb = New();
        var syn = tcb.CreateSyn(T0);
        Assert.False(tcb.OnSynAck(new TcpRepr { AckNumber = syn.SequenceNumber + 7, Flags = TcpFlags.Rst | TcpFlags.Ack }, T0));
        Assert.Equal(StreamState.SynSent, tcb.State); // Not for our SYN: ignored.
        Assert.False(tcb.OnSynAck(new TcpRepr { AckNumber = syn.SequenceNumber + 1, Flags = TcpFlags.Rst | TcpFlags.Ack }, T0));
        Assert.Equal(StreamState.Closed, tcb.State);
        Assert.Equal(StreamError.Refused, tcb.Error);
        Assert.True(tcb.Readable);
        Assert.True(tcb.Writable);
        Assert.Equal(0, tcb.Write(new byte[10]));
    }

    [Fact]
    public void Options_are_used_only_when_both_sides_offer_them()
    {
        var peer = ScriptedPeer.ActiveOpen(StreamOptions.Default, ScriptedPeer.DefaultPeerOptions with { SackPermitted = false, WindowScale = null });
        Assert.False(peer.Tcb.SackEnabled);
        Assert.False(peer.Tcb.TimestampsEnabled);
        Assert.Equal(0, peer.Tcb.SendWindowShift);
        Assert.Equal(0, peer.Tcb.ReceiveWindowShift); // We offered 7 but the peer did not answer with WS.

        var both = ScriptedPeer.ActiveOpen(StreamOptions.Default, ScriptedPeer.DefaultPeerOptions with { WindowScale = 3, Timestamp = new TcpTimestamp(77, 0) });
        Assert.True(both.Tcb.SackEnabled);
        Assert.True(both.Tcb.TimestampsEnabled);
        Assert.Equal(3, both.Tcb.SendWindowShift);
        Assert.Equal(7, both.Tcb.ReceiveWindowShift);
    }

    [Fact]
    public void Syn_ack_echoes_only_what_the_peer_offered()
    {
        var tcb = New(StreamOptions.Default);
        var syn = new TcpRepr { SequenceNumber = 100, Flags = TcpFlags.Syn, Window = 1000, MaxSegmentSize = 1200, SackPermitted = true };
        Assert.True(tcb.OnSyn(syn, T0));
        Assert.Equal(StreamState.SynReceived, tcb.State);
        var synAck = tcb.CreateSynAck(T0);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(101u, synAck.AckNumber);
        Assert.Equal(tcb.InitialSequenceNumber, synAck.SequenceNumber);
        Assert.True(synAck.SackPermitted);
        Assert.Null(synAck.WindowScale);
        Assert.Null(synAck.Timestamp);
        Assert.Equal(synAck, tcb.CreateSynAck(T0 + TimeSpan.FromSeconds(1)));
        Assert.Equal(1200 - 0, tcb.Mss);
    }

    [Fact]
    public void Repeated_syn_is_accepted_and_a_different_one_is_not()
    {
        var tcb = New();
        var syn = ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 100, Flags = TcpFlags.Syn };
        Assert.True(tcb.OnSyn(syn, T0));
        Assert.True(tcb.OnSyn(syn, T0));
        Assert.False(tcb.OnSyn(syn with { SequenceNumber = 200 }, T0));
        Assert.False(New().OnSyn(syn with { Flags = TcpFlags.Syn | TcpFlags.Ack }, T0));
    }

    [Fact]
    public void Handshake_ack_must_acknowledge_our_syn_ack()
    {
        var tcb = New();
        Assert.True(tcb.OnSyn(ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 100, Flags = TcpFlags.Syn }, T0));
        var synAck = tcb.CreateSynAck(T0);
        var ack = new TcpRepr { SequenceNumber = 101, AckNumber = synAck.SequenceNumber + 5, Flags = TcpFlags.Ack, Window = 1000 };
        Assert.False(tcb.OnHandshakeAck(ack, default, T0));
        Assert.Equal(StreamState.SynReceived, tcb.State);
        Assert.True(tcb.OnHandshakeAck(ack with { AckNumber = synAck.SequenceNumber + 1 }, default, T0));
        Assert.Equal(StreamState.Established, tcb.State);
    }

    [Fact]
    public void Data_and_fin_in_the_handshake_ack_are_delivered()
    {
        var tcb = New();
        Assert.True(tcb.OnSyn(ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 100, Flags = TcpFlags.Syn }, T0));
        var synAck = tcb.CreateSynAck(T0);
        var ack = new TcpRepr { SequenceNumber = 101, AckNumber = synAck.SequenceNumber + 1, Flags = TcpFlags.Ack | TcpFlags.Fin, Window = 1000 };
        Assert.True(tcb.OnHandshakeAck(ack, "hello"u8, T0));
        Assert.Equal(StreamState.CloseWait, tcb.State);
        var buffer = new byte[16];
        Assert.Equal(5, tcb.Read(buffer));
        Assert.Equal("hello"u8.ToArray(), buffer[..5]);
        Assert.True(tcb.ReadsCompleted);
    }

    [Fact]
    public void First_data_segment_completes_a_passive_open_when_the_handshake_ack_was_lost()
    {
        var tcb = New();
        Assert.True(tcb.OnSyn(ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 100, Flags = TcpFlags.Syn }, T0));
        var synAck = tcb.CreateSynAck(T0);
        tcb.OnSegment(new TcpRepr { SequenceNumber = 101, AckNumber = synAck.SequenceNumber + 1, Flags = TcpFlags.Ack | TcpFlags.Psh, Window = 1000 }, "abc"u8, T0);
        Assert.Equal(StreamState.Established, tcb.State);
        Assert.Equal(3, tcb.BytesAvailable);
    }

    [Fact]
    public void Peer_mss_caps_our_segments_and_536_is_assumed_without_the_option()
    {
        var small = ScriptedPeer.ActiveOpen(peerOptions: ScriptedPeer.DefaultPeerOptions with { MaxSegmentSize = 600 });
        small.Tcb.Write(new byte[2000]);
        Assert.All(small.Drain(), s => Assert.True(s.Payload.Length <= 600));

        var none = ScriptedPeer.ActiveOpen(peerOptions: ScriptedPeer.DefaultPeerOptions with { MaxSegmentSize = null });
        Assert.Equal(536, none.Tcb.Mss);
        none.Tcb.Write(new byte[2000]);
        Assert.Equal(536, none.Expect().Payload.Length);
    }

    [Fact]
    public void Window_scale_above_14_is_treated_as_14()
    {
        var peer = ScriptedPeer.ActiveOpen(peerOptions: ScriptedPeer.DefaultPeerOptions with { WindowScale = 20 });
        Assert.Equal(14, peer.Tcb.SendWindowShift);
    }

    [Fact]
    public void Data_written_before_the_connection_opens_is_sent_once_it_does()
    {
        var tcb = New();
        Assert.Equal(3000, tcb.Write(new byte[3000]));
        var syn = tcb.CreateSyn(T0);
        Assert.False(tcb.TryPoll(T0, new byte[1000], out _, out _));
        Assert.True(tcb.OnSynAck(ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 7, AckNumber = syn.SequenceNumber + 1, Flags = TcpFlags.Syn | TcpFlags.Ack }, T0));
        var sent = 0;
        while (tcb.TryPoll(T0, new byte[1000], out var s, out var n))
        {
            sent += n;
        }

        Assert.Equal(3000, sent);
    }

    [Fact]
    public void Handshake_methods_refuse_to_run_in_the_wrong_state()
    {
        var tcb = New();
        Assert.Throws<InvalidOperationException>(() => tcb.CreateSynAck(T0));
        Assert.Throws<InvalidOperationException>(() => tcb.CreateHandshakeAck());
        tcb.CreateSyn(T0);
        Assert.False(tcb.OnSyn(ScriptedPeer.DefaultPeerOptions with { Flags = TcpFlags.Syn }, T0));
        var passive = New();
        passive.OnSyn(ScriptedPeer.DefaultPeerOptions with { Flags = TcpFlags.Syn }, T0);
        Assert.Throws<InvalidOperationException>(() => passive.CreateSyn(T0));
    }

    [Fact]
    public void Handshake_rtt_is_sampled_unless_the_syn_was_retransmitted()
    {
        var once = ScriptedPeer.ActiveOpen(rtt: TimeSpan.FromMilliseconds(30));
        Assert.Equal(TimeSpan.FromMilliseconds(30), once.Tcb.Statistics.SmoothedRtt);

        var tcb = New();
        var syn = tcb.CreateSyn(T0);
        tcb.CreateSyn(T0 + TimeSpan.FromSeconds(1)); // The SAL retransmitted it.
        Assert.True(tcb.OnSynAck(ScriptedPeer.DefaultPeerOptions with { SequenceNumber = 7, AckNumber = syn.SequenceNumber + 1, Flags = TcpFlags.Syn | TcpFlags.Ack }, T0 + TimeSpan.FromSeconds(1.05)));
        Assert.Equal(TimeSpan.Zero, tcb.Statistics.SmoothedRtt);
    }
}
