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
    }
}
