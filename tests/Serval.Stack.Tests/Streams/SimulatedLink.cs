using Serval.Stack;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// One direction of a simulated path: seeded loss, duplication, reordering, delay with FIFO jitter, and a
/// bottleneck (serialisation at a rate, tail-drop queue). Several flows may share one link.
/// </summary>
internal sealed class SimulatedLink
{
    private readonly VirtualNetwork _network;
    private readonly SeededRandomSource _random;
    private long _busyUntilTicks;
    private double _carry;
    private TimeSpan _lastArrival;

    public SimulatedLink(VirtualNetwork network, LinkProfile profile, ulong seed)
    {
        _network = network;
        Profile = profile;
        _random = new SeededRandomSource(seed);
    }

    public LinkProfile Profile { get; set; }

    public long Sent { get; private set; }

    public long Lost { get; private set; }

    public long QueueDrops { get; private set; }

    public long WireBytes { get; private set; }

    public void Transmit(TimeSpan now, IPacketSink destination, ReadOnlySpan<byte> packet)
    {
        Sent++;
        var p = Profile;
        if (p.Loss > 0 && _random.NextDouble() < p.Loss)
        {
            Lost++;
            return;
        }

        var size = packet.Length + p.PerPacketOverhead;
        var departure = now;
        if (p.BitsPerSecond > 0)
        {
            var start = Math.Max(now.Ticks, _busyUntilTicks);
            var backlogBytes = (start - now.Ticks) * (double)p.BitsPerSecond / 8 / TimeSpan.TicksPerSecond;
            if (backlogBytes + size > p.QueueBytes)
            {
                QueueDrops++;
                return;
            }

            var serialisation = (size * 8.0 * TimeSpan.TicksPerSecond / p.BitsPerSecond) + _carry;
            var whole = (long)serialisation;
            _carry = serialisation - whole;
            _busyUntilTicks = start + whole;
            departure = TimeSpan.FromTicks(_busyUntilTicks);
        }

        WireBytes += size;
        var arrival = departure + p.Delay;
        if (p.Jitter > TimeSpan.Zero)
        {
            arrival += TimeSpan.FromTicks((long)(_random.NextDouble() * p.Jitter.Ticks));
        }

        if (arrival < _lastArrival)
        {
            arrival = _lastArrival;
        }

        _lastArrival = arrival;
        if (p.Reorder > 0 && _random.NextDouble() < p.Reorder)
        {
            arrival += p.ReorderDelay;
        }

        _network.Schedule(arrival, destination, packet);
        if (p.Duplicate > 0 && _random.NextDouble() < p.Duplicate)
        {
            _network.Schedule(arrival + TimeSpan.FromTicks(1 + (long)(_random.NextDouble() * TimeSpan.TicksPerMillisecond)), destination, packet);
        }
    }
}
