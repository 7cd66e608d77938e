using Serval.Stack;
using Serval.Wire;

namespace Serval.AspNetCore;

/// <summary>
/// The Serval side of a connection Kestrel accepted on a <see cref="ServiceEndPoint"/>:
/// <c>HttpContext.Features.Get&lt;IServalConnectionFeature&gt;()</c> (or the connection's
/// <c>ConnectionContext.Features</c>). Null on connections of other transports.
/// <para>
/// <c>HttpContext.Connection.RemoteIpAddress</c>/<c>RemotePort</c> are the client's link address when the connection
/// was accepted (a stream client has no serviceID of its own); <c>LocalIpAddress</c> is null, since the local end is
/// a service (<see cref="LocalEndPoint"/>), not an IP end point.
/// </para>
/// </summary>
public interface IServalConnectionFeature
{
    /// <summary>The service the client connected to (within the bound prefix for a prefix listener).</summary>
    ServiceEndPoint LocalEndPoint { get; }

    /// <summary>The service or prefix Kestrel bound (the listener's end point).</summary>
    ServiceEndPoint ListenEndPoint { get; }

    /// <summary>This end's flowID.</summary>
    FlowId LocalFlow { get; }

    /// <summary>The client's flowID.</summary>
    FlowId PeerFlow { get; }

    /// <summary>The client's link address when the connection was accepted (a migration moves it; see <see cref="GetFlowInfoAsync"/>).</summary>
    LinkAddress PeerAddress { get; }

    /// <summary>The Serval connection (its stream is Kestrel's transport: do not read or write it).</summary>
    ServalConnection Connection { get; }

    /// <summary>The flow as it is now (addresses after migrations, state, statistics); null once it is gone.</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>A snapshot of the flow.</returns>
    ValueTask<FlowInfo?> GetFlowInfoAsync(CancellationToken cancellationToken = default);
}
