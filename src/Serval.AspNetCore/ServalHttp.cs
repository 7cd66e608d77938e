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
    /// A service that no router or host knows fails the request at once with <see cref="HttpRequestError.NameResolutionError"/>,
    /// a refused or unanswered connect with <see cref="HttpRequestError.ConnectionError"/> (the <see cref="ServalException"/> is
    /// the inner exception). A pooled connection whose peer died fails its request after the stream's user timeout
    /// (<see cref="Stack.Streams.StreamOptions.UserTimeout"/>, 20 s by default) with an <see cref="IOException"/> before any
    /// response byte, which <see cref="SocketsHttpHandler"/> retries on a new connection: through a service router, to a
    /// replica that is still registered.
    /// </summary>
    /// <param name="host">A started embedded or attached host.</param>
    /// <param name="resolve">Maps the request's host and port to the service to connect to; null for the default.</param>
    /// <returns>A handler for <see cref="HttpClient"/>; it owns its pooled connections, not the host.</returns>
    public static SocketsHttpHandler CreateHandler(ServalHost host, Func<DnsEndPoint, ServiceEndPoint>? resolve = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        return CreateDeferredHandler(_ => ValueTask.FromResult(host), resolve);
    }

    /// <summary><see cref="CreateHandler(ServalHost, Func{DnsEndPoint, ServiceEndPoint}?)"/> on a host obtained at each connect (the application's, from dependency injection).</summary>
    internal static SocketsHttpHandler CreateDeferredHandler(Func<CancellationToken, ValueTask<ServalHost>> getHost, Func<DnsEndPoint, ServiceEndPoint>? resolve)
    {
        return new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var endPoint = resolve?.Invoke(context.DnsEndPoint) ?? DefaultResolve(context.DnsEndPoint);
                var host = await getHost(cancellationToken).ConfigureAwait(false);
                try
                {
                    var connection = await ServalConnection.ConnectAsync(
                        new ServalConnectionOptions { Host = host, Service = endPoint.Service, AdvisoryAddress = endPoint.AdvisoryAddress, ServiceName = context.DnsEndPoint.Host },
                        cancellationToken).ConfigureAwait(false);
                    return connection.GetStream(); // disposing the stream closes the connection
                }
                catch (ServalException e)
                {
                    // Fail fast with the cause: no such service is a name-resolution error, the rest connection errors.
                    throw new HttpRequestException(
                        e.Error == Stack.ServalError.ServiceNotFound ? HttpRequestError.NameResolutionError : HttpRequestError.ConnectionError,
                        $"Serval could not connect to {context.DnsEndPoint.Host}: {e.Message}",
                        e);
                }
            },
        };
    }

    /// <summary>
    /// <see cref="CreateHandler"/> behind a handler that retries an idempotent request without a body (GET, HEAD,
    /// OPTIONS, PUT, DELETE, TRACE) on a new connection, up to <paramref name="retries"/> times, when its connection died
    /// without an answer: the peer stopped acknowledging (the stream's user timeout, 20 s by default), reset or refused
    /// it. The new connection's SYN is resolved again, so through a service router it reaches a replica that is still
    /// registered. Other failures and non-idempotent requests are not retried.
    /// </summary>
    /// <param name="host">A started embedded or attached host.</param>
    /// <param name="resolve">Maps the request's host and port to the service to connect to; null for the default.</param>
    /// <param name="retries">How many times a request may be retried (0 to 10).</param>
    /// <returns>A handler for <see cref="HttpClient"/>.</returns>
    public static HttpMessageHandler CreateFailoverHandler(ServalHost host, Func<DnsEndPoint, ServiceEndPoint>? resolve = null, int retries = 2)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(retries);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(retries, 10);
        return new ServalFailoverHandler(CreateHandler(host, resolve), retries);
    }

    private static ServiceEndPoint DefaultResolve(DnsEndPoint endPoint) =>
        ServiceEndPoint.TryParse(endPoint.Host, out var service)
            ? new ServiceEndPoint(service.Service)
            : throw new HttpRequestException($"'{endPoint.Host}' is not a service name or serviceID.");
}
