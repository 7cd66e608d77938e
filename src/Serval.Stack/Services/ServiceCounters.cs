namespace Serval.Stack.Services;

/// <summary>
/// Packet and byte counters of a rule, an entry or the whole table. One object lives as long as what it counts:
/// it is shared by every published version of a rule or entry, so counts survive modifications. Increments are
/// atomic and may come from any thread; reads are atomic per counter (not across counters).
/// </summary>
public sealed class ServiceCounters
{
    private long _packetsResolved;
    private long _bytesResolved;
    private long _packetsDropped;
    private long _bytesDropped;
    private long _lastResolvedTicks = long.MinValue;

    internal ServiceCounters()
    {
    }

    /// <summary>Packets resolved (forwarded, delivered or otherwise handled by a rule).</summary>
    public long PacketsResolved => CrossThread.Read(ref _packetsResolved);

    /// <summary>Bytes of the packets counted in <see cref="PacketsResolved"/>.</summary>
    public long BytesResolved => CrossThread.Read(ref _bytesResolved);

    /// <summary>Packets dropped (no rule, a DROP rule, or a failed resolution).</summary>
    public long PacketsDropped => CrossThread.Read(ref _packetsDropped);

    /// <summary>Bytes of the packets counted in <see cref="PacketsDropped"/>.</summary>
    public long BytesDropped => CrossThread.Read(ref _bytesDropped);

    /// <summary>The <c>now</c> of the latest recorded resolution, or null if nothing was resolved yet.</summary>
    public TimeSpan? LastResolved
    {
        get
        {
            var t = CrossThread.Read(ref _lastResolvedTicks);
            return t == long.MinValue ? null : new TimeSpan(t);
        }
    }

    internal long LastResolvedTicks => CrossThread.Read(ref _lastResolvedTicks);

    internal void RecordResolved(int bytes, TimeSpan now)
    {
        CrossThread.Increment(ref _packetsResolved);
        CrossThread.Add(ref _bytesResolved, bytes);

        // Keep the latest time; a racing older write can only lose against a newer one.
        var ticks = now.Ticks;
        var seen = CrossThread.Read(ref _lastResolvedTicks);
        while (ticks > seen)
        {
            var previous = CrossThread.CompareExchange(ref _lastResolvedTicks, ticks, seen);
            if (previous == seen)
            {
                break;
            }

            seen = previous;
        }
    }

    internal void RecordDropped(int bytes)
    {
        CrossThread.Increment(ref _packetsDropped);
        CrossThread.Add(ref _bytesDropped, bytes);
    }
}
