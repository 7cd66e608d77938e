using Serval.Stack;

namespace Serval.Simulation;

/// <summary>Something a <see cref="SimPath"/> delivers packets to.</summary>
public interface IPathReceiver
{
    /// <summary>A packet arrives at virtual time <paramref name="now"/>.</summary>
    void Receive(TimeSpan now, ReadOnlySpan<byte> packet);
}

/// <summary>
/// One direction of a point-to-point path on a <see cref="SimulatedNetwork"/>'s event queue, for tests that drive
/// transport connections directly (no engine, no addresses): the <see cref="LinkConditions"/> loss, duplication,
/// reordering, delay and jitter, and a bottleneck (serialisation at <see cref="LinkConditions.BandwidthBitsPerSecond"/>,
/// tail drop beyond <see cref="LinkConditions.QueueBytes"/>). Unlike a <see cref="SimLink"/>, jitter keeps the order
/// of packets (FIFO; only <see cref="LinkConditions.Reorder"/> reorders), the bandwidth is the path's (several flows
/// may share it), <see cref="LinkConditions.Mtu"/> does not apply, and every packet counts
/// <see cref="HeaderBytes"/> more on the wire than it has (the IP and SAL headers a bare transport segment lacks).
/// </summary>
public sealed class SimPath
{
    private readonly SimulatedNetwork _network;
    private readonly SeededRandomSource _random;
    private long _busyUntilTicks;
    private double _carry;
    private TimeSpan _lastArrival;

    /// <summary>Creates a path whose random choices derive from <paramref name="seed"/>.</summary>
    public SimPath(SimulatedNetwork network, LinkConditions conditions, ulong seed, int headerBytes = 32)
    {
        ArgumentNullException.ThrowIfNull(network);
        _network = network;
        Conditions = conditions;
        HeaderBytes = headerBytes;
        _random = new SeededRandomSource(seed);
    }

    /// <summary>Impairments; may be changed at any time.</summary>
    public LinkConditions Conditions { get; set; }

    /// <summary>Bytes added to every packet on the wire (default 32: IPv4 20 + SAL 12).</summary>
    public int HeaderBytes { get; }

    /// <summary>Packets offered.</summary>
    public long Sent { get; private set; }

    /// <summary>Packets lost at random.</summary>
    public long Lost { get; private set; }

    /// <summary>Packets dropped at the full bottleneck queue.</summary>
    public long QueueDrops { get; private set; }

    /// <summary>Bytes that went onto the wire, headers included.</summary>
    public long WireBytes { get; private set; }

    /// <summary>Sends <paramref name="packet"/> at <paramref name="now"/> towards <paramref name="destination"/>.</summary>
    public void Transmit(TimeSpan now, IPathReceiver destination, ReadOnlySpan<byte> packet)
    {
        ArgumentNullException.ThrowIfNull(destination);
        Sent++;
        var c = Conditions;
        if (c.Loss > 0 && _random.NextDouble() < c.Loss)
        {
            Lost++;
            return;
        }

        var size = packet.Length + HeaderBytes;
        var departure = now;
        if (c.BandwidthBitsPerSecond > 0)
        {
            var start = Math.Max(now.Ticks, _busyUntilTicks);
            var backlogBytes = (start - now.Ticks) * (double)c.BandwidthBitsPerSecond / 8 / TimeSpan.TicksPerSecond;
            if (backlogBytes + size > c.QueueBytes)
            {
                QueueDrops++;
                return;
            }

            var serialisation = (size * 8.0 * TimeSpan.TicksPerSecond / c.BandwidthBitsPerSecond) + _carry;
            var whole = (long)serialisation;
            _carry = serialisation - whole;
            _busyUntilTicks = start + whole;
            departure = TimeSpan.FromTicks(_busyUntilTicks);
        }

        WireBytes += size;
        var arrival = departure + c.Delay;
        if (c.Jitter > TimeSpan.Zero)
        {
            arrival += TimeSpan.FromTicks((long)(_random.NextDouble() * c.Jitter.Ticks));
        }

        if (arrival < _lastArrival)
        {
            arrival = _lastArrival;
        }

        _lastArrival = arrival;
        if (c.Reorder > 0 && _random.NextDouble() < c.Reorder)
        {
            arrival += c.ReorderDelay;
        }

        var copy = packet.ToArray();
        _network.Enqueue(arrival, () => destination.Receive(_network.Now, copy));
        if (c.Duplicate > 0 && _random.NextDouble() < c.Duplicate)
        {
            _network.Enqueue(arrival + TimeSpan.FromTicks(1 + (long)(_random.NextDouble() * TimeSpan.TicksPerMillisecond)), () => destination.Receive(_network.Now, copy));
        }
    }
}
