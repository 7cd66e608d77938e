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
    public long Delayed => CrossThread.Read(ref _delayed);

    /// <summary>Delayed packets released after the resolver installed a rule.</summary>
    public long Resolved => CrossThread.Read(ref _resolved);

    /// <summary>Delayed packets dropped because the resolver had no answer (a failure or a negative answer).</summary>
    public long Unresolved => CrossThread.Read(ref _unresolved);

    /// <summary>Delayed packets parked waiting for an asynchronous answer.</summary>
    public long Pending => CrossThread.Read(ref _pending);

    /// <summary>Resolutions refused: prefix not covering the service, bad targets, or a more specific rule still shadowing them.</summary>
    public long Invalid => CrossThread.Read(ref _invalid);

    /// <summary>Parked packets forgotten after the engine's delay lifetime.</summary>
    public long Expired => CrossThread.Read(ref _expired);

    /// <summary>Delayed packets dropped at once because a negative answer for their service was remembered.</summary>
    public long NegativeHits => CrossThread.Read(ref _negativeHits);

    /// <summary>Installed answers removed to stay within <see cref="ResolverControllerOptions.MaxAnswers"/>.</summary>
    public long Evicted => CrossThread.Read(ref _evicted);

    internal void CountNegativeHits() => CrossThread.Write(ref _negativeHits, _negativeHits + 1);

    internal void CountEvicted() => CrossThread.Write(ref _evicted, _evicted + 1);

    internal void CountDelayed() => CrossThread.Write(ref _delayed, _delayed + 1);

    internal void CountResolved() => CrossThread.Write(ref _resolved, _resolved + 1);

    internal void CountUnresolved() => CrossThread.Write(ref _unresolved, _unresolved + 1);

    internal void CountPending() => CrossThread.Write(ref _pending, _pending + 1);

    internal void CountInvalid() => CrossThread.Write(ref _invalid, _invalid + 1);

    internal void CountExpired() => CrossThread.Write(ref _expired, _expired + 1);
}
