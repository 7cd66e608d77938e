namespace Serval.Links;

/// <summary>
/// Impairment a <see cref="FaultInjectionLink"/> (or an <see cref="InMemoryHub"/>) applies to received packets:
/// independent loss and duplication, and a delay with uniform jitter (jitter reorders). Seeded, so a run repeats.
/// </summary>
public sealed record FaultInjectionOptions
{
    /// <summary>No impairment.</summary>
    public static FaultInjectionOptions None { get; } = new();

    /// <summary>Probability that a packet is dropped (0 to 1).</summary>
    public double LossRate { get; init; }

    /// <summary>Probability that a packet is delivered twice (0 to 1).</summary>
    public double DuplicationRate { get; init; }

    /// <summary>Fixed delay added to every packet.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Extra delay drawn uniformly from zero to this value for each packet.</summary>
    public TimeSpan Jitter { get; init; }

    /// <summary>Seed of the impairment's random choices.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Whether any impairment is configured.</summary>
    public bool IsActive => LossRate > 0 || DuplicationRate > 0 || Delay > TimeSpan.Zero || Jitter > TimeSpan.Zero;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (LossRate is < 0 or > 1 || double.IsNaN(LossRate))
        {
            throw new ArgumentException($"{nameof(LossRate)} must be 0 to 1 (was {LossRate}).", nameof(LossRate));
        }

        if (DuplicationRate is < 0 or > 1 || double.IsNaN(DuplicationRate))
        {
            throw new ArgumentException($"{nameof(DuplicationRate)} must be 0 to 1 (was {DuplicationRate}).", nameof(DuplicationRate));
        }

        if (Delay < TimeSpan.Zero || Jitter < TimeSpan.Zero || Delay + Jitter > TimeSpan.FromMinutes(1))
        {
            throw new ArgumentException($"{nameof(Delay)} and {nameof(Jitter)} must be non-negative and total at most a minute.", nameof(Delay));
        }
    }
}
