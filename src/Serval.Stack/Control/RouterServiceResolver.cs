using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// Resolves delayed serviceIDs by asking the service routers of a <see cref="HostController"/> (a Resolve message,
/// docs/control-protocol.md §9): the first router that answers gives the rules; a router that does not answer is
/// asked again and then the next one is asked; a NotFound answer is a negative answer; no answer from any router is a
/// failure. Drive the host controller as usual; the answers complete the <see cref="ResolverController"/> this
/// resolver is given to.
/// </summary>
public sealed class RouterServiceResolver : IDeferredServiceResolver
{
    private readonly HostController _host;
    private ResolverController? _controller;

    /// <summary>A resolver that asks <paramref name="host"/>'s routers.</summary>
    public RouterServiceResolver(HostController host)
    {
        ArgumentNullException.ThrowIfNull(host);
        _host = host;
    }

    /// <inheritdoc/>
    public void Attach(ResolverController controller)
    {
        ArgumentNullException.ThrowIfNull(controller);
        if (_controller is not null && _controller != controller)
        {
            throw new InvalidOperationException("This resolver already answers another ResolverController.");
        }

        _controller = controller;
    }

    /// <inheritdoc/>
    public ServiceResolution? Resolve(ServiceId service, TimeSpan now) =>
        _controller is { } controller && _host.Resolve(service, now, (s, r, t) => controller.Complete(s, r, t))
            ? ServiceResolution.Pending
            : null;
}
