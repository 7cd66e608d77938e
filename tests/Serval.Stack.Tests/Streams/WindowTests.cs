using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Flow control: a full receiver, zero-window probing (persist timer), window updates, silly windows.</summary>
public sealed class WindowTests
{
    [Fact]
    public void Sender_stops_at_a_zero_window_and_probes_with_backoff_until_it_opens()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(new byte[10_000]);
        peer.PeerWindow = 3000;
        peer.Send(peer.Ack());
        Assert.Equal(3000, peer.Drain().Sum(s => s.Payload.Length));

        // The receiver's buffer is full: it acknowledges everything but advertises nothing.
        peer.PeerWindow = 0;
        peer.Send(peer.Ack(3000));
        peer.ExpectNothing();

        // Persist timer: probes at growing intervals, each an old sequence number without data.
        var waits = new List<TimeSpan>();
        for (var i = 0; i < 4; i++)
        {
            waits.Add(peer.AdvanceToNextTimeout());
            var (probe, payload) = peer.Expect();
            Assert.Empty(payload);
            Assert.Equal(peer.Seq(3000 - 1), probe.SequenceNumber);
            peer.ExpectNothing();
            peer.Send(peer.Ack(3000)); // Still zero.
        }

        Assert.Equal(TimeSpan.FromMilliseconds(200), waits[0]);
        Assert.Equal(waits[0] * 2, waits[1]);
        Assert.Equal(waits[1] * 2, waits[2]);
        Assert.Equal(waits[2] * 2, waits[3]);
        Assert.Equal(4, peer.Tcb.Statistics.WindowProbes);

        // The window opens: data flows again.
        peer.PeerWindow = 5000;
        peer.Send(peer.Ack(3000));
        var resumed = peer.Drain();
        Assert.Equal(5000, resumed.Sum(s => s.Payload.Length));
        Assert.Equal(peer.Seq(3000), resumed[0].Segment.SequenceNumber);
    }

    [Fact]
    public void Unanswered_window_probes_time_out()
    {
        var peer = ScriptedPeer.ActiveOpen(ScriptedPeer.TestOptions with { MaxRetransmissions = 3 });
        peer.Tcb.Write(new byte[100]);
        peer.PeerWindow = 0;
        peer.Send(peer.Ack());
        peer.ExpectNothing();
        for (var i = 0; i < 3; i++)
        {
            peer.AdvanceToNextTimeout();
            peer.Expect();
        }

        peer.AdvanceToNextTimeout();
        peer.ExpectNothing();
        Assert.Equal(StreamError.TimedOut, peer.Tcb.Error);
    }

    [Fact]
    public void Full_receive_buffer_advertises_zero_and_reading_sends_a_window_update()
    {
        var peer = ScriptedPeer.ActiveOpen();
        var size = ScriptedPeer.TestOptions.ReceiveBufferSize;
        for (var sent = 0; sent < size; sent += 1024)
        {
            peer.SendData(1024);
        }

        var last = peer.Drain()[^1].Segment;
        Assert.Equal((ushort)0, last.Window);

        // Reading a little does not reopen a silly window.
        var buffer = new byte[size];
        peer.Tcb.Read(buffer.AsSpan(0, 100));
        peer.ExpectNothing();

        // Reading enough does, at once.
        peer.Tcb.Read(buffer.AsSpan(0, 8000));
        var (update, payload) = peer.Expect();
        Assert.Empty(payload);
        Assert.Equal(peer.PeerSeq(size), update.AckNumber);
        Assert.Equal((ushort)8100, update.Window);
    }

    [Fact]
    public void Zero_window_probe_from_the_peer_is_answered()
    {
        var peer = ScriptedPeer.ActiveOpen();
        var size = ScriptedPeer.TestOptions.ReceiveBufferSize;
        for (var sent = 0; sent < size; sent += 1024)
        {
            peer.SendData(1024);
        }

        peer.Drain();

        // Linux-style probe (old sequence number) and RFC-style probe (one byte beyond the window).
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerNext - 1 });
        Assert.Equal((ushort)0, peer.Expect().Segment.Window);
        peer.Send(peer.Ack(), new byte[1]);
        var (ack, _) = peer.Expect();
        Assert.Equal(peer.PeerSeq(size), ack.AckNumber);
        Assert.Equal(size, peer.Tcb.BytesAvailable);
    }

    [Fact]
    public void Small_usable_window_is_not_used_until_the_persist_timer_overrides()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(new byte[10_000]);
        peer.PeerWindow = 10_000;
        peer.Send(peer.Ack());
        Assert.Equal(10_000, peer.Drain().Sum(s => s.Payload.Length));
        peer.Tcb.Write(new byte[5_000]);

        // Acknowledged, but the window's right edge moved by only 200 bytes: silly.
        peer.PeerWindow = 200;
        peer.Send(peer.Ack(10_000));
        peer.ExpectNothing();

        peer.AdvanceToNextTimeout();
        var (segment, payload) = peer.Expect();
        Assert.Equal(200, payload.Length);
        Assert.Equal(peer.Seq(10_000), segment.SequenceNumber);
    }

    [Fact]
    public void Window_update_without_new_data_reopens_the_flow()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Tcb.Write(new byte[4000]);
        peer.PeerWindow = 2000;
        peer.Send(peer.Ack());
        Assert.Equal(2000, peer.Drain().Sum(s => s.Payload.Length));
        peer.PeerWindow = 0;
        peer.Send(peer.Ack(2000));
        peer.ExpectNothing();
        peer.PeerWindow = 4000;
        peer.Send(peer.Ack(2000));
        Assert.Equal(2000, peer.Drain().Sum(s => s.Payload.Length));
    }
}
