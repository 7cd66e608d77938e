using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Serval.AspNetCore;

/// <summary>
/// <c>services.AddServal()</c>: a Serval host owned by the application — options bound from configuration (section
/// <c>Serval</c>) and validated at start, logging through the application's <see cref="ILoggerFactory"/>, metrics
/// through its <see cref="IMeterFactory"/>, started before the application's other hosted services (Kestrel included)
/// and stopped after them.
/// </summary>
public static class ServalServiceCollectionExtensions
{
    /// <summary>
    /// Adds the application's Serval host: <see cref="ServalOptions"/> bound from the configuration section
    /// <see cref="ServalOptions.Section"/> (when the application has an <see cref="IConfiguration"/>), then changed by
    /// <paramref name="configure"/>, and validated when the application starts (an invalid setting fails the start
    /// with an <see cref="OptionsValidationException"/> naming its configuration key). The host is available from
    /// dependency injection as <see cref="ServalHostAccessor"/> and, once the application has started, as
    /// <see cref="ServalHost"/>. Kestrel's <c>UseServal()</c>, <c>AddHttpClient(…).UseServal()</c> and the health
    /// check use it. Calling it again only adds <paramref name="configure"/>.
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configure">Changes the options after configuration binding; null for none.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddServal(this IServiceCollection services, Action<ServalOptions>? configure = null) =>
        services.AddServal(ServalOptions.Section, configure);

    /// <summary>
    /// <see cref="AddServal(IServiceCollection, Action{ServalOptions}?)"/> with the options bound from another
    /// configuration section.
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configurationSection">The section's path, e.g. <c>Serval</c> or <c>Shop:Serval</c>.</param>
    /// <param name="configure">Changes the options after configuration binding; null for none.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddServal(this IServiceCollection services, string configurationSection, Action<ServalOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(configurationSection);
        var builder = services.AddOptions<ServalOptions>();
        if (!services.Any(d => d.ServiceType == typeof(ServalHostAccessor)))
        {
            builder.BindConfiguration(configurationSection).ValidateOnStart();
            services.AddSingleton<IValidateOptions<ServalOptions>, ServalOptionsValidator>();
            services.AddMetrics();
            services.AddSingleton(sp =>
            {
                var options = sp.GetRequiredService<IOptions<ServalOptions>>();
                var loggers = sp.GetService<ILoggerFactory>();
                var meters = sp.GetService<IMeterFactory>();
                return new ServalHostAccessor(ct => StartAsync(options.Value, loggers, meters, ct));
            });
            services.TryAddSingleton(sp => sp.GetRequiredService<ServalHostAccessor>().Host
                ?? throw new InvalidOperationException("The Serval host has not started yet: resolve ServalHostAccessor and await GetHostAsync(), or resolve ServalHost once the application has started."));
            services.AddHostedService<ServalHostedService>();
        }

        if (configure is not null)
        {
            builder.Configure(configure);
        }

        return services;
    }

    private static async ValueTask<ServalHost> StartAsync(ServalOptions options, ILoggerFactory? loggers, IMeterFactory? meters, CancellationToken cancellationToken)
    {
        if (options.DaemonSocketPath is { } socket)
        {
            return await ServalHost.AttachAsync(socket, cancellationToken).ConfigureAwait(false);
        }

        var hostOptions = options.ToHostOptions(loggers, meters);
        try
        {
            return await ServalHost.StartAsync(hostOptions, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ArgumentException or OperationCanceledException)
        {
            foreach (var link in hostOptions.Links)
            {
                link.Dispose();
            }

            if (e is ArgumentException)
            {
                throw new InvalidOperationException($"Invalid Serval host options: {e.Message}", e);
            }

            throw;
        }
    }
}

/// <summary>Starts the application's Serval host before the other hosted services start, and stops it after they have stopped.</summary>
internal sealed class ServalHostedService(ServalHostAccessor accessor) : IHostedLifecycleService
{
    public async Task StartingAsync(CancellationToken cancellationToken) => await accessor.GetHostAsync(cancellationToken).ConfigureAwait(false);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken) => await accessor.DisposeAsync().AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
}

/// <summary>Checks <see cref="ServalOptions"/> without binding anything; each failure names its configuration key.</summary>
internal sealed class ServalOptionsValidator : IValidateOptions<ServalOptions>
{
    public ValidateOptionsResult Validate(string? name, ServalOptions options)
    {
        var errors = options.Check();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
