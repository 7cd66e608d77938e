using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Serval.AspNetCore;

/// <summary>
/// The application's Serval host as a health check (<c>services.AddHealthChecks().AddServal()</c>):
/// <list type="bullet">
/// <item>Unhealthy: the host failed to start or has stopped (attached: servald went away); no link is up; a service
/// Kestrel serves stopped accepting while still bound.</item>
/// <item>Degraded: some links are down; a bound service is registered with service routers but no router has
/// acknowledged its current registration.</item>
/// <item>Healthy otherwise.</item>
/// </list>
/// The result's data gives the host, the links up and in all, the registrations and their acknowledgements, and the
/// services Kestrel serves.
/// </summary>
public sealed class ServalHealthCheck(ServalHostAccessor accessor) : IHealthCheck
{
    /// <inheritdoc/>
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var failed = context.Registration?.FailureStatus ?? HealthStatus.Unhealthy;
        if (accessor.StartFailure is { } failure)
        {
            return new HealthCheckResult(failed, $"The Serval host failed to start: {failure.Message}", failure);
        }

        if (accessor.Host is not { } host)
        {
            return new HealthCheckResult(failed, "The Serval host has not started.");
        }

        var data = new Dictionary<string, object> { ["host"] = host.Name, ["attached"] = host.IsAttached };
        if (host.IsStopped)
        {
            return new HealthCheckResult(failed, host.IsAttached ? $"The Serval host {host.Name} is detached: servald went away." : $"The Serval host {host.Name} has stopped.", data: data);
        }

        var problems = new List<string>();
        var degraded = new List<string>();
        var listeners = accessor.Listeners;
        data["listeners"] = listeners.Select(l => l.ServiceEndPoint.ToString()).ToArray();
        foreach (var l in listeners.Where(l => l.Failure is not null))
        {
            problems.Add($"{l.ServiceEndPoint} stopped accepting connections: {l.Failure!.Message}");
        }

        if (!host.IsAttached)
        {
            var interfaces = await host.GetInterfacesAsync(cancellationToken).ConfigureAwait(false);
            var links = interfaces.Where(i => i.Index > 0).ToList();
            var up = links.Count(i => i.IsUp);
            data["links_up"] = up;
            data["links"] = links.Count;
            if (links.Count > 0 && up == 0)
            {
                problems.Add("no link is up");
            }
            else
            {
                degraded.AddRange(links.Where(i => !i.IsUp).Select(i => $"link {i.Index} ({i.Name}) is down"));
            }

            var registrations = await host.Admin.GetRegistrationsAsync(cancellationToken).ConfigureAwait(false);
            data["registrations"] = registrations.Count;
            data["registrations_acknowledged"] = registrations.Count(r => r.AcknowledgedBy > 0);
            degraded.AddRange(registrations.Where(r => r.AcknowledgedBy == 0).Select(r => $"{r.Prefix} is not acknowledged by any router"));
        }

        if (problems.Count > 0)
        {
            return new HealthCheckResult(failed, string.Join("; ", problems.Concat(degraded)), data: data);
        }

        return degraded.Count > 0
            ? HealthCheckResult.Degraded(string.Join("; ", degraded), data: data)
            : HealthCheckResult.Healthy($"Serval host {host.Name} is up.", data);
    }
}

/// <summary><c>services.AddHealthChecks().AddServal()</c>.</summary>
public static class ServalHealthChecksBuilderExtensions
{
    /// <summary>Adds <see cref="ServalHealthCheck"/> for the application's Serval host (adding the host with its defaults if <c>AddServal</c> was not called).</summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name (default <c>serval</c>).</param>
    /// <param name="failureStatus">The status reported for a failure (default <see cref="HealthStatus.Unhealthy"/>).</param>
    /// <param name="tags">Tags to filter checks by.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddServal(this IHealthChecksBuilder builder, string name = "serval", HealthStatus? failureStatus = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddServal();
        return builder.Add(new HealthCheckRegistration(name, sp => new ServalHealthCheck(sp.GetRequiredService<ServalHostAccessor>()), failureStatus, tags));
    }
}
