namespace Serval.Stack.ControlPlane;

/// <summary>Counters of a <see cref="ResolverController"/>. Read from any thread.</summary>
public sealed class ResolverControllerCounters
{
    private long _delayed;
    private long _resolved;
    private long _unresolved;
    private long _pending;
    private long _invalid;
    private long _expired;
    private long _negativeHits;
    private long _evicted;

    internal ResolverControllerCounters()
    {
    }

    /// <summary>PacketDelayed events handled.</summary>
    public long Delayed => Volatile.Read(ref _delayed);

    /// <summary>Delayed packets released after the resolver installed a rule.</summary>
    public long Resolved => Volatile.Read(ref _resolved);

    /// <summary>Delayed packets dropped because the resolver had no answer (a failure or a negative answer).</summary>
    public long Unresolved => Volatile.Read(ref _unresolved);

    /// <summary>Delayed packets parked waiting for an asynchronous answer.</summary>
    public long Pending => Volatile.Read(ref _pending);

    /// <summary>Resolutions refused: prefix not covering the service, bad targets, or a more specific rule still shadowing them.</summary>
    public long Invalid => Volatile.Read(ref _invalid);

    /// <summary>Parked packets forgotten after the engine's delay lifetime.</summary>
    public long Expired => Volatile.Read(ref _expired);

    /// <summary>Delayed packets dropped at once because a negative answer for their service was remembered.</summary>
    public long NegativeHits => Volatile.Read(ref _negativeHits);

    /// <summary>Installed answers removed to stay within <see cref="ResolverControllerOptions.MaxAnswers"/>.</summary>
    public long Evicted => Volatile.Read(ref _evicted);

    internal void CountNegativeHits() => Volatile.Write(ref _negativeHits, _negativeHits + 1);

    internal void CountEvicted() => Volatile.Write(ref _evicted, _evicted + 1);

    internal void CountDelayed() => Volatile.Write(ref _delayed, _delayed + 1);

    internal void CountResolved() => Volatile.Write(ref _resolved, _resolved + 1);

    internal void CountUnresolved() => Volatile.Write(ref _unresolved, _unresolved + 1);

    internal void CountPending() => Volatile.Write(ref _pending, _pending + 1);

    internal void CountInvalid() => Volatile.Write(ref _invalid, _invalid + 1);

    internal void CountExpired() => Volatile.Write(ref _expired, _expired + 1);
}
