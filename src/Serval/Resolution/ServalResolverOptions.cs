using Serval.Stack.ControlPlane;

namespace Serval.Resolution;

/// <summary>
/// On-demand resolution for a <see cref="ServalHost"/> (<see cref="ServalHostOptions.Resolver"/>; docs/resolution.md):
/// a default DELAY rule holds the first packet of every service no other rule resolves, the sources are asked, and
/// the answer is installed as FORWARD rules that release the packet at once.
/// </summary>
public sealed record ServalResolverOptions
{
    /// <summary>The sources, asked in order until one answers positively (for example a <see cref="StaticFileResolver"/> then a <see cref="DnsServiceResolver"/>). The host does not dispose them.</summary>
    public IReadOnlyList<IAsyncServiceResolver> Sources { get; init; } = [];

    /// <summary>
    /// After the sources, ask the host's registration routers (<see cref="ServalHostOptions.Registration"/>,
    /// <see cref="ServalHostOptions.RegisterWithRouter"/>) with a Resolve message (docs/control-protocol.md §9).
    /// </summary>
    public bool AskRouters { get; init; }

    /// <summary>
    /// Install the DELAY rule for the default prefix (/0) at start (default true). Without it only DELAY rules added
    /// otherwise (for example for some prefixes only) are resolved.
    /// </summary>
    public bool InstallDelayRule { get; init; } = true;

    /// <summary>
    /// Priority of that DELAY rule (default 20: above the default routes toward a router, priority 1 and 10, so that the
    /// sources are asked first; below it, a default route only answers when the DELAY rule is removed).
    /// </summary>
    public uint DelayPriority { get; init; } = 20;

    /// <summary>How long one resolution may take, all sources together (default 4 s; the engine holds a packet 5 s).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>The resolver controller: priority of the installed rules, how many answers stay installed, how long a negative answer is remembered.</summary>
    public ResolverControllerOptions Controller { get; init; } = ResolverControllerOptions.Default;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Sources, nameof(Sources));
        ArgumentNullException.ThrowIfNull(Controller, nameof(Controller));
        if (Sources.Any(s => s is null))
        {
            throw new ArgumentException("A resolver source is null.", nameof(Sources));
        }

        if (Sources.Count == 0 && !AskRouters)
        {
            throw new ArgumentException("A resolver needs at least one source or AskRouters.", nameof(Sources));
        }

        if (DelayPriority > Stack.Services.ServiceTable.MaxPriority)
        {
            throw new ArgumentException("DelayPriority is above the service table's maximum.", nameof(DelayPriority));
        }

        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromMinutes(1))
        {
            throw new ArgumentException($"{nameof(Timeout)} must be positive and at most a minute (was {Timeout}).", nameof(Timeout));
        }

        Controller.Validate();
    }
}
