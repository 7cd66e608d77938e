using System.Diagnostics;
using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// Steady-state transfer allocates nothing per segment: two connections pumped directly into each other (no
/// simulated network), measured with the allocation counter of the current thread after a warm-up.
/// </summary>
public sealed class AllocationTests
{
    internal const long DropEvery = 500;

    private readonly ITestOutputHelper _output;

    public AllocationTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Bulk_transfer_allocates_nothing_per_segment(bool sack)
    {
        var options = StreamOptions.Default with { UseSack = sack, UseTimestamps = sack };

        var now = TimeSpan.FromSeconds(1);
        var a = new StreamConnection(options, new SeededRandomSource(1), now);
        var b = new StreamConnection(options, new SeededRandomSource(2), now);
        var syn = a.CreateSyn(now);
        Assert.True(b.OnSyn(syn, now));
        Assert.True(a.OnSynAck(b.CreateSynAck(now), now));
        Assert.True(b.OnHandshakeAck(a.CreateHandshakeAck(), default, now));

        var chunk = new byte[64 * 1024];
        var payload = new byte[options.Mss];
        var sink = new byte[256 * 1024];
        long segments = 0;

        void Pump(long bytes)
        {
            long received = 0;
            while (received < bytes)
            {
                a.Write(chunk);
                while (a.TryPoll(now, payload, out var s, out var n))
                {
                    // Drop one segment in DropEvery to exercise SACK / recovery on the way.
                    if (++segments % DropEvery != 0)
                    {
                        b.OnSegment(s, payload.AsSpan(0, n), now);
                    }
                }

                received += b.Read(sink);
                while (b.TryPoll(now, payload, out var s, out var n))
                {
                    a.OnSegment(s, payload.AsSpan(0, n), now);
                }

                now += TimeSpan.FromMicroseconds(50);
                if (a.NextTimeout is { } t && t <= now)
                {
                    a.OnTimeout(now);
                }
            }
        }

        Pump(64L * 1024 * 1024); // Warm-up: buffers and queues reach their working size.
        var segmentsBefore = segments;
        const long measured = 256L * 1024 * 1024;
        var started = Stopwatch.GetTimestamp();
        var before = GC.GetAllocatedBytesForCurrentThread();
        Pump(measured);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        var elapsed = Stopwatch.GetElapsedTime(started);
        var count = segments - segmentsBefore;
        _output.WriteLine($"sack={sack}: {count} segments, {allocated} bytes allocated, {elapsed.TotalMilliseconds * 1e6 / measured:F2} ns/byte, {measured * 8 / elapsed.TotalSeconds / 1e9:F2} Gbit/s, retransmissions {a.Statistics.Retransmissions}");
        Assert.Equal(0, allocated);
        Assert.Equal(StreamState.Established, a.State);
        Assert.True(a.Statistics.Retransmissions > 0);
    }
}
