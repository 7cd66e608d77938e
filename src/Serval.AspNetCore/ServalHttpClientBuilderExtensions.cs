using System.Net;
using Microsoft.Extensions.DependencyInjection;

namespace Serval.AspNetCore;

/// <summary>
/// <see cref="System.Net.Http.IHttpClientFactory"/> over Serval: <c>services.AddHttpClient("shop").UseServal()</c>
/// makes the named (or typed) client's requests to <c>http://NAME/…</c> connect to the service NAME on the
/// application's Serval host (<see cref="ServalServiceCollectionExtensions.AddServal(IServiceCollection, Action{ServalOptions}?)"/>).
/// </summary>
public static class ServalHttpClientBuilderExtensions
{
    /// <summary>
    /// Makes the client's primary handler <see cref="ServalHttp.CreateHandler(ServalHost, Func{DnsEndPoint, ServiceEndPoint}?)"/>
    /// on the application's Serval host (added with its defaults if <c>AddServal</c> was not called), and with
    /// <paramref name="retries"/> above 0 adds the failover of <see cref="ServalHttp.CreateFailoverHandler"/> to the
    /// client's handlers. The factory's other handlers, logging and handler lifetime apply as usual.
    /// </summary>
    /// <param name="builder">The client's builder (<c>AddHttpClient</c>).</param>
    /// <param name="resolve">Maps the request's host and port to the service; null parses the URI host as a serviceID or hashes it as a name.</param>
    /// <param name="retries">How many times an idempotent request whose connection died without an answer is retried on a new connection (0 to 10; default 0: none).</param>
    /// <returns>The builder.</returns>
    public static IHttpClientBuilder UseServal(this IHttpClientBuilder builder, Func<DnsEndPoint, ServiceEndPoint>? resolve = null, int retries = 0)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentOutOfRangeException.ThrowIfNegative(retries);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(retries, 10);
        builder.Services.AddServal();
        builder.ConfigurePrimaryHttpMessageHandler(sp =>
        {
            var accessor = sp.GetRequiredService<ServalHostAccessor>();
            return ServalHttp.CreateDeferredHandler(ct => new ValueTask<ServalHost>(accessor.GetHostAsync(ct)), resolve);
        });
        if (retries > 0)
        {
            builder.AddHttpMessageHandler(() => new ServalFailoverHandler(retries));
        }

        return builder;
    }
}
