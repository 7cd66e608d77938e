using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Keepalive probes (RFC 9293 §3.8.4): off by default; idle time, interval, probe count.</summary>
public sealed class KeepAliveTests
{
    internal static readonly StreamOptions KeepAliveOptions = ScriptedPeer.TestOptions with
    {
        KeepAlive = TimeSpan.FromSeconds(10),
        KeepAliveInterval = TimeSpan.FromSeconds(2),
        KeepAliveProbes = 3,
    };

    [Fact]
    public void Keepalive_is_off_by_default()
    {
        var peer = ScriptedPeer.ActiveOpen();
        Assert.Null(peer.Tcb.NextTimeout);
    }

    [Fact]
    public void Idle_connection_is_probed_and_an_answer_restarts_the_idle_timer()
    {
        var peer = ScriptedPeer.ActiveOpen(KeepAliveOptions);
        Assert.Equal(TimeSpan.FromSeconds(10), peer.AdvanceToNextTimeout());
        var (probe, payload) = peer.Expect();
        Assert.Empty(payload);
        Assert.Equal(peer.Seq(-1), probe.SequenceNumber); // An already acknowledged sequence number.
        peer.ExpectNothing();

        peer.Advance(TimeSpan.FromMilliseconds(10));
        peer.Send(peer.Ack()); // The peer answers.
        peer.ExpectNothing();
        Assert.Equal(TimeSpan.FromSeconds(10), peer.AdvanceToNextTimeout()); // A full idle period again.
        Assert.Equal(1, peer.Tcb.Statistics.KeepAliveProbes);
        Assert.Equal(StreamState.Established, peer.Tcb.State);
    }

    [Fact]
    public void Unanswered_probes_time_the_connection_out()
    {
        var peer = ScriptedPeer.ActiveOpen(KeepAliveOptions);
        var waits = new List<TimeSpan>();
        for (var i = 0; i < 3; i++)
        {
            waits.Add(peer.AdvanceToNextTimeout());
            peer.Expect();
        }

        waits.Add(peer.AdvanceToNextTimeout());
        peer.ExpectNothing();
        Assert.Equal([10, 2, 2, 2], waits.Select(w => (int)w.TotalSeconds));
        Assert.Equal(StreamState.Closed, peer.Tcb.State);
        Assert.Equal(StreamError.TimedOut, peer.Tcb.Error);
        Assert.Equal(3, peer.Tcb.Statistics.KeepAliveProbes);
    }

    [Fact]
    public void Keepalive_probe_from_the_peer_is_answered()
    {
        var peer = ScriptedPeer.ActiveOpen();
        peer.Send(peer.Ack() with { SequenceNumber = peer.PeerNext - 1 });
        Assert.Equal(peer.PeerNext, peer.Expect().Segment.AckNumber);
    }

    [Fact]
    public void No_probes_while_data_is_outstanding()
    {
        var peer = ScriptedPeer.ActiveOpen(KeepAliveOptions);
        peer.Tcb.Write(new byte[100]);
        peer.Drain();
        Assert.True(peer.Tcb.NextTimeout < peer.Now + TimeSpan.FromSeconds(1)); // The retransmission timer.
    }
}
