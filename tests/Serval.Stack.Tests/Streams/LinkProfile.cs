namespace Serval.Stack.Tests.Streams;

/// <summary>How one direction of a simulated path treats packets.</summary>
internal sealed record LinkProfile
{
    /// <summary>A perfect path: no delay, no loss, infinite bandwidth.</summary>
    public static LinkProfile Perfect { get; } = new();

    /// <summary>One-way propagation delay.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Extra delay drawn uniformly from [0, Jitter]; order is preserved (FIFO).</summary>
    public TimeSpan Jitter { get; init; }

    /// <summary>Probability that a packet is dropped.</summary>
    public double Loss { get; init; }

    /// <summary>Probability that a packet is delivered twice.</summary>
    public double Duplicate { get; init; }

    /// <summary>Probability that a packet is held back by <see cref="ReorderDelay"/> and overtaken.</summary>
    public double Reorder { get; init; }

    /// <summary>Extra delay of a reordered packet.</summary>
    public TimeSpan ReorderDelay { get; init; } = TimeSpan.FromMilliseconds(3);

    /// <summary>Bottleneck rate in bits per second; 0 means unlimited.</summary>
    public long BitsPerSecond { get; init; }

    /// <summary>Bottleneck queue in bytes (tail drop beyond it).</summary>
    public int QueueBytes { get; init; } = 256 * 1024;

    /// <summary>Bytes added to every TCP segment on the wire (IPv4 20 + SAL 12).</summary>
    public int PerPacketOverhead { get; init; } = 32;
}
