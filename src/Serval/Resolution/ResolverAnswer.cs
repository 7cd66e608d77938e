using Serval.Wire;

namespace Serval.Resolution;

/// <summary>An answer of an <see cref="IAsyncServiceResolver"/>: where a service is, or that it does not exist, and for how long that holds.</summary>
public sealed record ResolverAnswer
{
    private ResolverAnswer(ServicePrefix prefix, IReadOnlyList<ResolverTarget> targets, TimeSpan ttl)
    {
        Prefix = prefix;
        Targets = targets;
        Ttl = ttl;
    }

    /// <summary>The prefix the answer covers (it contains the serviceID asked for); its rules answer every serviceID under it.</summary>
    public ServicePrefix Prefix { get; }

    /// <summary>The next hops, each with a weight; empty for <see cref="NotFound"/>.</summary>
    public IReadOnlyList<ResolverTarget> Targets { get; }

    /// <summary>How long the answer may be used (the installed rules expire then; a negative answer is remembered at most this long).</summary>
    public TimeSpan Ttl { get; }

    /// <summary>Whether the answer has targets.</summary>
    public bool IsFound => Targets.Count > 0;

    /// <summary>The service is under <paramref name="prefix"/> at <paramref name="targets"/>.</summary>
    /// <exception cref="ArgumentException">No target, a target without address or weight, or a TTL that is not positive.</exception>
    public static ResolverAnswer Found(ServicePrefix prefix, IReadOnlyList<ResolverTarget> targets, TimeSpan ttl)
    {
        ArgumentNullException.ThrowIfNull(targets);
        if (targets.Count == 0 || targets.Any(t => t.Address.IsNone || t.Weight is 0 or > int.MaxValue))
        {
            throw new ArgumentException("An answer needs at least one target, each with an address and a weight of 1 to 2^31 - 1.", nameof(targets));
        }

        return ttl > TimeSpan.Zero ? new ResolverAnswer(prefix, [.. targets], ttl) : throw new ArgumentOutOfRangeException(nameof(ttl), ttl, "The TTL must be positive.");
    }

    /// <summary>The service does not exist for this source (remembered for <paramref name="ttl"/>, at most the host's negative lifetime).</summary>
    public static ResolverAnswer NotFound(TimeSpan ttl) =>
        ttl >= TimeSpan.Zero ? new ResolverAnswer(default, [], ttl) : throw new ArgumentOutOfRangeException(nameof(ttl), ttl, "The TTL must not be negative.");
}

/// <summary>One next hop of a <see cref="ResolverAnswer"/>.</summary>
/// <param name="Address">The next hop's address; port 0 on a UDP link means the default port (54325).</param>
/// <param name="Weight">Its share of new connections among the answer's targets (1 to 2³¹ − 1).</param>
public readonly record struct ResolverTarget(LinkAddress Address, uint Weight = 1);
