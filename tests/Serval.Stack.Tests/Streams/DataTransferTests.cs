using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Sending, receiving, reassembly and SACK generation on an established connection.</summary>
public sealed class DataTransferTests
{
    [Fact]
    public void Data_goes_out_in_mss_sized_segments_with_push_on_the_last()
    {
        var peer = ScriptedPeer.ActiveOpen();
        Assert.Equal(2500, peer.Tcb.Write(ScriptedPeer.Pattern(0, 2500)));
        var segments = peer.Drain();
        Assert.Equal([1000, 1000, 500], segments.Select(s => s.Payload.Length));
        Assert.Equal([0L, 1000, 2000], segments.Select(s => peer.OffsetOf(s.Segment)));
        Assert.All(segments, s => Assert.True(s.Segment.Has(TcpFlags.Ack)));
        Assert.False(segments[0].Segment.Has(TcpFlags.Psh));
        Assert.True(segments[2].Segment.Has(TcpFlags.Psh));
        Assert.Equal(ScriptedPeer.Pattern(0, 2500), segments.SelectMany(s => s.Payload).ToArray());
        peer.ExpectNothing();
    }

    [Fact]
    public void Acknowledged_data_frees_the_send_buffer()
    {
        var peer = ScriptedPeer.ActiveOpen();
        var size = ScriptedPeer.TestOptions.SendBufferSize;
        Assert.Equal(size, peer.Tcb.Write(new byte[size + 100]));
        Assert.Equal(0, peer.Tcb.SendBufferFree);
        Assert.False(peer.Tcb.Writable);
        peer.Drain();
        peer.Send(peer.Ack(3000));
        Assert.Equal(3000, peer.Tcb.SendBufferFree);
        Assert.True(peer.Tcb.Writable);
        Assert.Equal(3000, peer.Tcb.Statistics.BytesAcked);
    }

    [Fact]
    public void In_order_data_is_readable_and_acknowledged()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(1000);
        peer.SendData(1000);
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(2000), ack.AckNumber);
        Assert.Equal(2000, peer.Tcb.BytesAvailable);
        var buffer = new byte[4096];
        Assert.Equal(2000, peer.Tcb.Read(buffer));
        Assert.Equal(ScriptedPeer.Pattern(0, 2000), buffer[..2000]);
        Assert.Equal(2000, peer.Tcb.Statistics.BytesReceived);
    }

    [Fact]
    public void Out_of_order_data_is_sacked_at_once_and_reassembled()
    {
        var peer = ScriptedPeer.ActiveOpen();
        var first = peer.PeerNext;
        peer.PeerNext = peer.PeerSeq(1000);
        peer.SendData(1000); // [1000, 2000) arrives first.
        peer.PeerNext = peer.PeerSeq(3000);
        peer.SendData(500); // [3000, 3500) too.

        var (ack, payload) = peer.Expect();
        Assert.Empty(payload);
        Assert.Equal(peer.PeerSeq(0), ack.AckNumber);
        Assert.Equal(2, ack.SackBlocks.Count);
        Assert.Equal(new TcpSackBlock(peer.PeerSeq(3000), peer.PeerSeq(3500)), ack.SackBlocks[0]); // Most recent first.
        Assert.Equal(new TcpSackBlock(peer.PeerSeq(1000), peer.PeerSeq(2000)), ack.SackBlocks[1]);
        Assert.Equal(0, peer.Tcb.BytesAvailable);

        peer.PeerNext = first;
        peer.SendData(1000); // Fills the first hole.
        (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(2000), ack.AckNumber);
        Assert.Equal(1, ack.SackBlocks.Count);
        Assert.Equal(new TcpSackBlock(peer.PeerSeq(3000), peer.PeerSeq(3500)), ack.SackBlocks[0]);

        peer.PeerNext = peer.PeerSeq(2000);
        peer.SendData(1000);
        (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(3500), ack.AckNumber);
        Assert.Equal(0, ack.SackBlocks.Count);
        var buffer = new byte[4000];
        Assert.Equal(3500, peer.Tcb.Read(buffer));
        Assert.Equal(ScriptedPeer.Pattern(0, 3500), buffer[..3500]);
    }

    [Fact]
    public void Duplicate_data_is_reported_with_a_dsack_block()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(1000);
        peer.Drain();
        peer.PeerNext = peer.PeerSeq(0);
        peer.SendData(1000); // The same segment again.
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(1000), ack.AckNumber);
        Assert.Equal(new TcpSackBlock(peer.PeerSeq(0), peer.PeerSeq(1000)), ack.SackBlocks[0]);
        Assert.Equal(1000, peer.Tcb.BytesAvailable);
        Assert.Equal(1, peer.Tcb.Statistics.DuplicateSegmentsReceived);
    }

    [Fact]
    public void Partly_duplicate_segment_delivers_only_the_new_bytes()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(1000);
        peer.PeerNext = peer.PeerSeq(500);
        peer.SendData(1000);
        Assert.Equal(1500, peer.Tcb.BytesAvailable);
        var buffer = new byte[2000];
        peer.Tcb.Read(buffer);
        Assert.Equal(ScriptedPeer.Pattern(0, 1500), buffer[..1500]);
    }

    [Fact]
    public void Data_beyond_the_receive_buffer_is_dropped_and_the_window_closes()
    {
        var peer = ScriptedPeer.ActiveOpen();
        var size = ScriptedPeer.TestOptions.ReceiveBufferSize;
        for (var i = 0; i < size / 1000; i++)
        {
            peer.SendData(1000);
        }

        peer.SendData(1000); // Only 768 bytes fit.
        Assert.Equal(size, peer.Tcb.BytesAvailable);
        var acks = peer.Drain();
        var last = acks[^1].Segment;
        Assert.Equal(peer.PeerSeq(size), last.AckNumber);
        Assert.Equal((ushort)0, last.Window);
    }

    [Fact]
    public void Segment_outside_the_window_is_answered_with_an_ack_and_ignored()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerSeq(100_000) }, new byte[10]);
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(0), ack.AckNumber);
        Assert.Equal(0, peer.Tcb.BytesAvailable);
    }

    [Fact]
    public void Ack_for_data_never_sent_is_answered_and_ignored()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(new byte[100]);
        peer.Drain();
        peer.Send(peer.Ack(5000), new byte[10]);
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(0), ack.AckNumber); // The data was not accepted either.
        Assert.Equal(0, peer.Tcb.Statistics.BytesAcked);
    }

    [Fact]
    public void Advertised_window_is_the_free_receive_buffer()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.SendData(1000);
        peer.SendData(1000);
        var (ack, _) = peer.Expect();
        Assert.Equal((ushort)(ScriptedPeer.TestOptions.ReceiveBufferSize - 2000), ack.Window);
    }

    [Fact]
    public void Window_scaling_shifts_the_advertised_and_the_peer_window()
    {
        var peer = ScriptedPeer.ActiveOpen(StreamOptions.Default with { Pacing = false }, ScriptedPeer.DefaultPeerOptions with { WindowScale = 2 });
        peer.PeerWindow = 1000; // 4000 bytes.
        peer.Send(peer.Ack());
        Assert.Equal(4000, peer.Tcb.Statistics.SendWindow);
        peer.SendData(1000);
        peer.Tcb.Write(new byte[10_000]);
        var sent = peer.Drain();
        Assert.Equal(4000, sent.Sum(s => s.Payload.Length));
        Assert.Equal((ushort)((4 * 1024 * 1024 - 1000) >> 7), sent[0].Segment.Window);
    }

    [Fact]
    public void Timestamps_are_sent_and_echoed()
    {
        var peer = ScriptedPeer.ActiveOpen(peerOptions: ScriptedPeer.DefaultPeerOptions with { Timestamp = new TcpTimestamp(1000, 0) });
        Assert.True(peer.Tcb.TimestampsEnabled);
        peer.Send(peer.Ack() with { Timestamp = new TcpTimestamp(1234, 0) }, new byte[100]);
        peer.PeerNext += 100;
        peer.AdvanceToNextTimeout(); // The delayed ACK.
        var (ack, _) = peer.Expect();
        Assert.Equal(1234u, ack.Timestamp!.Value.EchoReply);
        peer.Tcb.Write(new byte[2000]);
        var data = peer.Drain();
        Assert.All(data, d => Assert.True(d.Payload.Length <= 1000 - 12)); // Payload plus the option fit the MSS.
    }

    [Fact]
    public void Old_timestamp_on_data_is_rejected_by_paws()
    {
        var peer = ScriptedPeer.ActiveOpen(peerOptions: ScriptedPeer.DefaultPeerOptions with { Timestamp = new TcpTimestamp(1000, 0) });
        peer.Send(peer.Ack() with { Timestamp = new TcpTimestamp(2000, 0) }, new byte[100]);
        peer.PeerNext += 100;
        peer.Drain();
        peer.Send(peer.Ack() with { Timestamp = new TcpTimestamp(1500, 0) }, new byte[100]);
        Assert.Equal(100, peer.Tcb.BytesAvailable);
        Assert.Equal(1, peer.Tcb.Statistics.DuplicateSegmentsReceived);
    }

    [Fact]
    public void Syn_on_an_established_connection_gets_a_challenge_ack()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Send(peer.Ack() with { Flags = TcpFlags.Syn, SequenceNumber = 1 });
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(0), ack.AckNumber);
        Assert.Equal(StreamState.Established, peer.Tcb.State);
    }

    [Fact]
    public void Statistics_count_segments_and_bytes()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(new byte[1500]);
        peer.Drain();
        peer.Advance(TimeSpan.FromMilliseconds(12));
        peer.Send(peer.Ack(1500));
        var s = peer.Tcb.Statistics;
        Assert.Equal(1500, s.BytesSent);
        Assert.Equal(1500, s.BytesAcked);
        Assert.Equal(4, s.SegmentsSent); // SYN, handshake ACK and two data segments.
        Assert.Equal(2, s.SegmentsReceived); // SYN-ACK and the ACK.
        Assert.Equal(TimeSpan.FromMilliseconds(10), s.MinRtt);
        Assert.Equal(0, s.BytesInFlight);
        Assert.True(s.CongestionWindow >= 10 * 1000);
    }
}
