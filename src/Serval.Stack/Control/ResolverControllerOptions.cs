using Serval.Stack.Services;

namespace Serval.Stack.ControlPlane;

/// <summary>Settings of a <see cref="ResolverController"/>.</summary>
public sealed record ResolverControllerOptions
{
    /// <summary>The default settings.</summary>
    public static ResolverControllerOptions Default { get; } = new();

    /// <summary>Priority of the rules installed from resolutions; above the DELAY rules they supersede (default 100).</summary>
    public uint Priority { get; init; } = 100;

    /// <summary>Most services awaiting an asynchronous answer at once; packets beyond are dropped.</summary>
    public int MaxPending { get; init; } = 1024;

    /// <summary>How long an asynchronous answer is waited for (match the engine's <see cref="EngineOptions.DelayQueueLifetime"/>).</summary>
    public TimeSpan PendingLifetime { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Most answers whose rules are installed at once (default 4096): the installed rules are the cache of positive
    /// answers (they expire with the answer's lifetime); one answer more removes the rules of the oldest.
    /// </summary>
    public int MaxAnswers { get; init; } = 4096;

    /// <summary>
    /// Longest time a negative answer (<see cref="ServiceResolution.NotFound"/>) is remembered: packets for that
    /// serviceID are dropped without asking the resolver (default 2 s).
    /// </summary>
    public TimeSpan NegativeLifetime { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Most negative answers remembered at once (default 4096; the oldest is forgotten first).</summary>
    public int MaxNegative { get; init; } = 4096;

    /// <summary>Checks every value; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        if (Priority > ServiceTable.MaxPriority)
        {
            throw new ArgumentException("Priority is above the service table's maximum.", nameof(Priority));
        }

        if (MaxPending < 1 || PendingLifetime <= TimeSpan.Zero)
        {
            throw new ArgumentException("MaxPending and PendingLifetime must be positive.", nameof(MaxPending));
        }

        if (MaxAnswers < 1 || MaxNegative < 1 || NegativeLifetime <= TimeSpan.Zero)
        {
            throw new ArgumentException("MaxAnswers, MaxNegative and NegativeLifetime must be positive.", nameof(MaxAnswers));
        }
    }
}
