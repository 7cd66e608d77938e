using System.Net;
using System.Net.Http;

namespace Serval.AspNetCore;

/// <summary>HttpClient over Serval: requests to <c>http://NAME/…</c> (or https) connect to the service NAME.</summary>
public static class ServalHttp
{
    /// <summary>
    /// A handler whose connections are Serval stream connections from <paramref name="host"/>: the request's host
    /// (and port) are mapped to a service by <paramref name="resolve"/>, by default the URI host parsed as a
    /// serviceID or else hashed as a service name (<see cref="ServiceEndPoint.TryParse"/>; the port is ignored). The
    /// service is then resolved by the host's service table (rules, default router) or the end point's advisory
    /// address. <c>https://</c> runs TLS over the Serval stream (the handler's <see cref="SocketsHttpHandler.SslOptions"/>
    /// apply); HTTP/2 without TLS needs prior knowledge (<see cref="HttpVersionPolicy.RequestVersionExact"/>).
    /// </summary>
    /// <param name="host">A started embedded or attached host.</param>
    /// <param name="resolve">Maps the request's host and port to the service to connect to; null for the default.</param>
    /// <returns>A handler for <see cref="HttpClient"/>; it owns its pooled connections, not the host.</returns>
    public static SocketsHttpHandler CreateHandler(ServalHost host, Func<DnsEndPoint, ServiceEndPoint>? resolve = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        return new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var endPoint = resolve?.Invoke(context.DnsEndPoint) ?? DefaultResolve(context.DnsEndPoint);
                var connection = await ServalConnection.ConnectAsync(
                    new ServalConnectionOptions { Host = host, Service = endPoint.Service, AdvisoryAddress = endPoint.AdvisoryAddress }, cancellationToken).ConfigureAwait(false);
                return connection.GetStream(); // disposing the stream closes the connection
            },
        };
    }

    private static ServiceEndPoint DefaultResolve(DnsEndPoint endPoint) =>
        ServiceEndPoint.TryParse(endPoint.Host, out var service)
            ? new ServiceEndPoint(service.Service)
            : throw new HttpRequestException($"'{endPoint.Host}' is not a service name or serviceID.");
}
