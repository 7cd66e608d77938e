using System.Net;
using Microsoft.AspNetCore.Connections;

namespace Serval.AspNetCore;

/// <summary>
/// Kestrel's transport for <see cref="ServiceEndPoint"/>s: binding one listens on that service or prefix of the
/// <see cref="ServalHost"/> (registering it like any listener). Other endpoints are left to the other transports.
/// </summary>
internal sealed class ServalConnectionListenerFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly ServalHost? _host;
    private readonly ServalHostAccessor? _accessor;

    /// <summary>A transport on the caller's host.</summary>
    public ServalConnectionListenerFactory(ServalHost host) => _host = host;

    /// <summary>A transport on a host the application owns, started at the first bind.</summary>
    public ServalConnectionListenerFactory(ServalHostAccessor accessor) => _accessor = accessor;

    public bool CanBind(EndPoint endpoint) => endpoint is ServiceEndPoint;

    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not ServiceEndPoint service)
        {
            throw new NotSupportedException($"The Serval transport binds ServiceEndPoints only, not {endpoint.GetType().Name}.");
        }

        var host = _host ?? await _accessor!.GetHostAsync(cancellationToken).ConfigureAwait(false);
        var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = service }, cancellationToken).ConfigureAwait(false);
        return new ServalConnectionListener(listener, _accessor);
    }
}
