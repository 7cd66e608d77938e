using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// A resolver's answer for a delayed service: FORWARD targets to install for a prefix that contains the service,
/// optionally for a limited time; <see cref="NotFound"/>, a negative answer the controller remembers for a while; or
/// <see cref="Pending"/>, meaning the answer will come later through <see cref="ResolverController.Complete"/>.
/// </summary>
public sealed class ServiceResolution
{
    private ServiceResolution(bool pending)
    {
        IsPending = pending;
        Targets = [];
    }

    /// <summary>An answer.</summary>
    /// <param name="prefix">The prefix the rules are installed for; it must contain the delayed serviceID.</param>
    /// <param name="targets">At least one target.</param>
    /// <param name="lifetime">If set, the rules are removed this long after installation (a cache lifetime, like a DNS TTL).</param>
    public ServiceResolution(ServicePrefix prefix, IReadOnlyList<ResolvedTarget> targets, TimeSpan? lifetime = null)
    {
        ArgumentNullException.ThrowIfNull(targets);
        Prefix = prefix;
        Targets = targets;
        Lifetime = lifetime;
    }

    /// <summary>"Asked elsewhere; the answer follows through <see cref="ResolverController.Complete"/>."</summary>
    public static ServiceResolution Pending { get; } = new(pending: true);

    /// <summary>
    /// A negative answer: the service does not exist for this resolver. The packets are dropped and the controller
    /// answers the service from memory (without asking) for <paramref name="lifetime"/>, at most
    /// <see cref="ResolverControllerOptions.NegativeLifetime"/> (null: that).
    /// </summary>
    public static ServiceResolution NotFound(TimeSpan? lifetime = null) => new(pending: false) { Lifetime = lifetime };

    /// <summary>Whether this is <see cref="Pending"/>.</summary>
    public bool IsPending { get; }

    /// <summary>The prefix the rules are installed for.</summary>
    public ServicePrefix Prefix { get; }

    /// <summary>The FORWARD targets.</summary>
    public IReadOnlyList<ResolvedTarget> Targets { get; }

    /// <summary>How long the installed rules live (null: until removed); for <see cref="NotFound"/>, how long the negative answer is remembered.</summary>
    public TimeSpan? Lifetime { get; private init; }

    /// <summary>Whether this is a negative answer (<see cref="NotFound"/>, or an answer without targets).</summary>
    public bool IsNotFound => !IsPending && Targets.Count == 0;
}
