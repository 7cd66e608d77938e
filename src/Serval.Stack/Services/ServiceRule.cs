namespace Serval.Stack.Services;

/// <summary>
/// One target of a service-table entry with its priority, weight, flags, timeouts and counters. Immutable: an
/// update publishes a new rule object that shares <see cref="Counters"/> with the one it replaces.
/// </summary>
public sealed class ServiceRule
{
    internal ServiceRule(
        ServiceTarget target,
        uint priority,
        uint weight,
        ServiceFlags flags,
        TimeSpan? idleTimeout,
        TimeSpan? hardTimeout,
        TimeSpan addedAt,
        ServiceCounters counters,
        ServiceCounters entryCounters)
    {
        Target = target;
        Priority = priority;
        Weight = weight;
        Flags = flags;
        IdleTimeout = idleTimeout;
        HardTimeout = hardTimeout;
        AddedAt = addedAt;
        Counters = counters;
        EntryCounters = entryCounters;
    }

    /// <summary>The target.</summary>
    public ServiceTarget Target { get; }

    /// <summary>Priority; the set with the highest value is the one used.</summary>
    public uint Priority { get; }

    /// <summary>Weight for anycast selection inside the priority set (at least 1; an add with 0 stores 1).</summary>
    public uint Weight { get; }

    /// <summary>The service flags given with the rule.</summary>
    public ServiceFlags Flags { get; }

    /// <summary>The rule expires after this long without a recorded resolution (counted from <see cref="LastUsed"/>).</summary>
    public TimeSpan? IdleTimeout { get; }

    /// <summary>The rule expires this long after <see cref="AddedAt"/>, used or not.</summary>
    public TimeSpan? HardTimeout { get; }

    /// <summary>The <c>now</c> given when the rule was added (not changed by modifications).</summary>
    public TimeSpan AddedAt { get; }

    /// <summary>This rule's counters (they survive modifications of the rule).</summary>
    public ServiceCounters Counters { get; }

    /// <summary>When the rule was last used: its latest recorded resolution, or <see cref="AddedAt"/> if none is later.</summary>
    public TimeSpan LastUsed => new(Math.Max(AddedAt.Ticks, Counters.LastResolvedTicks));

    /// <summary>When the rule will expire if it is not used before then; null if it has no timeout.</summary>
    public TimeSpan? ExpiresAt
    {
        get
        {
            TimeSpan? at = null;
            if (HardTimeout is { } hard)
            {
                at = AddedAt + hard;
            }

            if (IdleTimeout is { } idle)
            {
                var idleAt = LastUsed + idle;
                if (at is null || idleAt < at.Value)
                {
                    at = idleAt;
                }
            }

            return at;
        }
    }

    internal ServiceCounters EntryCounters { get; }

    internal bool HasTimeout => IdleTimeout.HasValue || HardTimeout.HasValue;

    /// <summary>Which timeout has fired at <paramref name="now"/>, if any (hard first).</summary>
    internal ServiceExpiryReason? ExpiredAt(TimeSpan now)
    {
        if (HardTimeout is { } hard && now - AddedAt >= hard)
        {
            return ServiceExpiryReason.Hard;
        }

        if (IdleTimeout is { } idle && now - LastUsed >= idle)
        {
            return ServiceExpiryReason.Idle;
        }

        return null;
    }

    internal ServiceRule With(ServiceTarget target, uint priority, uint weight, ServiceFlags flags) =>
        new(target, priority, weight, flags, IdleTimeout, HardTimeout, AddedAt, Counters, EntryCounters);

    /// <summary>Text form: target, priority, weight and flags.</summary>
    public override string ToString() => $"{Target} prio {Priority} weight {Weight} flags 0x{(byte)Flags:x2}";
}
