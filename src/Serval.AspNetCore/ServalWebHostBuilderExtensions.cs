using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Serval.AspNetCore;

/// <summary>Kestrel over Serval: <c>builder.WebHost.UseServal()</c> (or <c>UseServal(host)</c>), then listen on <see cref="ServiceEndPoint"/>s.</summary>
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
    /// Adds the Serval transport on the application's Serval host from dependency injection
    /// (<see cref="ServalServiceCollectionExtensions.AddServal(IServiceCollection, Action{ServalOptions}?)"/>, called
    /// here with its defaults if the application did not): options from configuration (section <c>Serval</c>),
    /// the application's logging and metrics, started before Kestrel binds and stopped after Kestrel has stopped.
    /// </summary>
    /// <param name="builder">The web host builder.</param>
    /// <returns>The builder.</returns>
    public static IWebHostBuilder UseServal(this IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.ConfigureServices(services =>
        {
            services.AddServal();
            services.AddSingleton<IConnectionListenerFactory>(sp => new ServalConnectionListenerFactory(sp.GetRequiredService<ServalHostAccessor>()));
        });
    }

    /// <summary>
    /// Adds the Serval transport on a host that the web host owns: it is started from <paramref name="options"/> when
    /// Kestrel binds its first <see cref="ServiceEndPoint"/>, is available from dependency injection through
    /// <see cref="ServalHostAccessor"/>, and is disposed with the application's services. Options that leave
    /// <see cref="ServalHostOptions.LoggerFactory"/> or <see cref="ServalHostOptions.MeterFactory"/> unset get the
    /// application's. To bind the options from configuration instead, use <see cref="UseServal(IWebHostBuilder)"/>.
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
            services.AddSingleton(sp => new ServalHostAccessor(() => WithApplicationTelemetry(options(sp), sp)));
            services.AddSingleton<IConnectionListenerFactory>(sp => new ServalConnectionListenerFactory(sp.GetRequiredService<ServalHostAccessor>()));
        });
    }

    private static ServalHostOptions WithApplicationTelemetry(ServalHostOptions options, IServiceProvider services)
    {
        if (options.LoggerFactory is NullLoggerFactory && services.GetService<ILoggerFactory>() is { } loggers)
        {
            options = options with { LoggerFactory = loggers };
        }

        if (options.MeterFactory is null && services.GetService<IMeterFactory>() is { } meters)
        {
            options = options with { MeterFactory = meters };
        }

        return options;
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
