namespace Serval.Simulation;

/// <summary>
/// Impairments of a simulated link (<see cref="SimLink"/>) or path (<see cref="SimPath"/>), applied per packet with
/// its seeded random source. The one definition of link impairment for the simulator; the runtime's fault-injection
/// link has its own public settings (Serval.Links.FaultInjectionOptions).
/// </summary>
public sealed record LinkConditions
{
    /// <summary>A perfect link: no delay, loss or limit.</summary>
    public static LinkConditions Perfect { get; } = new();

    /// <summary>One-way propagation delay.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Extra delay drawn uniformly from [0, Jitter) per packet (may reorder on a <see cref="SimLink"/>; a <see cref="SimPath"/> keeps order).</summary>
    public TimeSpan Jitter { get; init; }

    /// <summary>Probability (0–1) that a packet is lost.</summary>
    public double Loss { get; init; }

    /// <summary>Probability (0–1) that a packet is delivered twice.</summary>
    public double Duplicate { get; init; }

    /// <summary>Probability (0–1) that a packet is held back by <see cref="ReorderDelay"/> (arriving after later ones).</summary>
    public double Reorder { get; init; }

    /// <summary>How long a reordered packet is held back.</summary>
    public TimeSpan ReorderDelay { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Link rate per sender in bits per second (0 = unlimited); packets queue behind each other.</summary>
    public long BandwidthBitsPerSecond { get; init; }

    /// <summary>Sender queue limit in bytes when a bandwidth is set (tail drop beyond).</summary>
    public int QueueBytes { get; init; } = 256 * 1024;

    /// <summary>Largest packet a <see cref="SimLink"/> carries; larger ones are dropped.</summary>
    public int Mtu { get; init; } = 1472;
}
