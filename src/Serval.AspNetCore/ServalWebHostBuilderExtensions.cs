using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Serval.AspNetCore;

/// <summary>Kestrel over Serval: <c>builder.WebHost.UseServal(host)</c>, then listen on <see cref="ServiceEndPoint"/>s.</summary>
public static class ServalWebHostBuilderExtensions
{
    /// <summary>
    /// Adds the Serval transport to Kestrel: endpoints given as <see cref="ServiceEndPoint"/> (see
    /// <see cref="ListenServal(KestrelServerOptions, ServiceEndPoint, Action{ListenOptions}?)"/>) are served on
    /// <paramref name="host"/>; IP and Unix endpoints keep Kestrel's socket transport. The host stays the caller's: it
    /// is neither started nor disposed by the web host.
    /// </summary>
    /// <param name="builder">The web host builder.</param>
    /// <param name="host">A started embedded or attached host.</param>
    /// <returns>The builder.</returns>
    public static IWebHostBuilder UseServal(this IWebHostBuilder builder, ServalHost host)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(host);
        return builder.ConfigureServices(services => services.AddSingleton<IConnectionListenerFactory>(new ServalConnectionListenerFactory(host)));
    }

    /// <summary>
    /// Adds the Serval transport on a host that the web host owns: it is started from <paramref name="options"/> when
    /// Kestrel binds its first <see cref="ServiceEndPoint"/>, is available as <see cref="ServalHost"/> from dependency
    /// injection once started (<see cref="ServalHostAccessor"/>), and is disposed with the application's services.
    /// </summary>
    /// <param name="builder">The web host builder.</param>
    /// <param name="options">Creates the host's options (links, engine, registration) from the application's services.</param>
    /// <returns>The builder.</returns>
    public static IWebHostBuilder UseServal(this IWebHostBuilder builder, Func<IServiceProvider, ServalHostOptions> options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        return builder.ConfigureServices(services =>
        {
            services.AddSingleton(sp => new ServalHostAccessor(() => options(sp)));
            services.AddSingleton<IConnectionListenerFactory>(sp => new ServalConnectionListenerFactory(sp.GetRequiredService<ServalHostAccessor>()));
        });
    }

    /// <summary>
    /// Listens on a service (or prefix) through the Serval transport (a <c>UseServal</c> overload must have been called).
    /// HTTP/1.1 by default; set <see cref="ListenOptions.Protocols"/> for HTTP/2 (prior knowledge, no TLS).
    /// </summary>
    /// <param name="options">Kestrel's options.</param>
    /// <param name="endPoint">The service or prefix to serve.</param>
    /// <param name="configure">Configures the endpoint (protocols, connection middleware).</param>
    public static void ListenServal(this KestrelServerOptions options, ServiceEndPoint endPoint, Action<ListenOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(endPoint);
        options.Listen(endPoint, configure ?? (_ => { }));
    }
}
