using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Serval.Links;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Daemon;

/// <summary>
/// A running servald: one <see cref="ServalHost"/> with the configured links, the control endpoint on a Unix domain
/// socket and, when configured, the Prometheus endpoint. Program.cs runs one inside the Generic Host;
/// tests start one directly.
/// </summary>
internal sealed partial class ServalDaemon : IAsyncDisposable
{
    private readonly ControlServer _control;
    private readonly AppServer _apps;
    private readonly MetricsExporter? _metrics;
    private readonly OtlpExporter? _otlp;
    private readonly IReadOnlyList<IDisposable> _owned;

    private ServalDaemon(ServalHost host, ControlServer control, AppServer apps, MetricsExporter? metrics, OtlpExporter? otlp, DaemonOptions options, IReadOnlyList<IDisposable> owned)
    {
        Host = host;
        _control = control;
        _apps = apps;
        _metrics = metrics;
        _otlp = otlp;
        Options = options;
        _owned = owned;
    }

    public ServalHost Host { get; }

    public DaemonOptions Options { get; }

    public string ControlSocket => _control.Path;

    /// <summary>Checks <paramref name="options"/> (<see cref="DaemonPlan.Create"/>) and starts the daemon.</summary>
    /// <exception cref="DaemonException">An option is invalid, a link or the control socket cannot be bound.</exception>
    public static Task<ServalDaemon> StartAsync(DaemonOptions options, ILoggerFactory loggerFactory, CancellationToken cancellationToken = default) =>
        StartAsync(DaemonPlan.Create(options), loggerFactory, cancellationToken);

    /// <summary>Starts the daemon <paramref name="plan"/> describes.</summary>
    /// <exception cref="DaemonException">A link or the control socket cannot be bound.</exception>
    public static async Task<ServalDaemon> StartAsync(DaemonPlan plan, ILoggerFactory loggerFactory, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var options = plan.Options;
        Resolution.ServalResolverOptions? resolver = null;
        IReadOnlyList<IDisposable> owned = [];
        if (plan.Resolver is { } resolverPlan)
        {
            (resolver, owned) = resolverPlan.Create();
        }

        List<ServalLink> links;
        try
        {
            links = CreateLinks(plan.Links);
        }
        catch
        {
            foreach (var o in owned)
            {
                o.Dispose();
            }

            throw;
        }

        EtcdRouterRegistry? registry = null;
        if (plan.Fleet is { } fleet)
        {
            registry = new EtcdRouterRegistry(fleet, loggerFactory.CreateLogger<EtcdRouterRegistry>());
            owned = [.. owned, registry];
        }

        ServalHost host;
        try
        {
            host = await ServalHost.StartAsync(
                new ServalHostOptions
                {
                    Name = options.Name,
                    Links = links,
                    LinkPolicies = plan.Policies,
                    Engine = plan.Engine,
                    LoggerFactory = loggerFactory,
                    Registration = plan.Registration ?? Stack.ControlPlane.HostControllerOptions.Default,
                    RouterControl = plan.Router,
                    RouterAdvertisement = options.Router?.Advertise ?? true ? Stack.ControlPlane.RouterAdvertiserOptions.Default : null,
                    RouterDiscovery = options.RouterDiscovery ? Stack.ControlPlane.RouterDiscoveryOptions.Default : null,
                    RouterRegistry = registry,
                    RegisterWithRouter = plan.RegisterWith,
                    Resolver = resolver,
                    PublishRegistrations = plan.Publish,
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ArgumentException or DaemonException or PlatformNotSupportedException)
        {
            foreach (var l in links)
            {
                l.Dispose();
            }

            foreach (var o in owned)
            {
                o.Dispose();
            }

            throw e as DaemonException ?? new DaemonException($"invalid configuration: {e.Message}", e);
        }

        ControlServer? control = null;
        MetricsExporter? metrics = null;
        OtlpExporter? otlp = null;
        var owners = new FlowOwners();
        var serviceNames = new ServiceNames(); // told by servalctl (rules.add) and by attached applications (listen, connect)
        var apps = new AppServer(host, loggerFactory.CreateLogger<AppServer>(), owners, serviceNames);
        try
        {
            foreach (var drained in plan.Drains)
            {
                await host.SetRouterDrainingAsync(drained, null, true, cancellationToken).ConfigureAwait(false);
            }

            control = ControlServer.Start(options.ControlSocketOrDefault, new ControlHandler(host, owners, serviceNames), loggerFactory.CreateLogger<ControlServer>(), apps);
            if (plan.MetricsPrefix is not null)
            {
                metrics = MetricsExporter.Start(plan.MetricsPrefix, host.Name);
            }

            otlp = OtlpExporter.Start(options.Otlp, host.Name);
        }
        catch
        {
            metrics?.Dispose();
            if (control is not null)
            {
                await control.DisposeAsync().ConfigureAwait(false);
            }

            await apps.DisposeAsync().ConfigureAwait(false);
            await host.DisposeAsync().ConfigureAwait(false);
            foreach (var o in owned)
            {
                o.Dispose();
            }

            throw;
        }

        var daemon = new ServalDaemon(host, control, apps, metrics, otlp, options, owned);
        var logger = loggerFactory.CreateLogger<ServalDaemon>();
        if (logger.IsEnabled(LogLevel.Information))
        {
            var mode = options.Mode.ToString();
            var names = string.Join(", ", host.Links.Select(l => l.Name));
            var routers = (plan.Registration?.Routers ?? []).Select(r => r.Address.ToString())
                .Concat(plan.RegisterWith.IsNone ? [] : [plan.RegisterWith.ToString()])
                .Distinct(StringComparer.Ordinal)
                .ToList();
            Started(
                logger,
                host.Name,
                mode,
                names,
                control.Path,
                routers.Count == 0 ? "no router" : string.Join(", ", routers),
                plan.MetricsPrefix is null ? "off" : plan.MetricsPrefix,
                options.Otlp is { Enabled: true } o ? $"{o.Protocol} to {o.Endpoint}" : "off");
        }

        if (plan.RouterWithoutKey)
        {
            RouterWithoutKey(logger, host.Name);
        }

        return daemon;
    }

    private static List<ServalLink> CreateLinks(IReadOnlyList<LinkPlan> plan)
    {
        var links = new List<ServalLink>();
        try
        {
            foreach (var l in plan)
            {
                try
                {
                    links.Add(l.Raw ? new RawIpLink(l.Address) : new UdpLink(l.Address, l.Port));
                }
                catch (Exception e) when (e is SocketException or ArgumentException or PlatformNotSupportedException)
                {
                    var what = l.Raw ? $"raw IP link on {l.Address}" : $"UDP link on {new IPEndPoint(l.Address, l.Port)}";
                    throw new DaemonException($"cannot open {what}: {e.Message}", e);
                }
            }
        }
        catch
        {
            foreach (var l in links)
            {
                l.Dispose();
            }

            throw;
        }

        return links;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "servald {Name} started in {Mode} mode; links: {Links}; control socket {Socket}; registers with {Routers}; metrics {Metrics}; OTLP {Otlp}")]
    private static partial void Started(ILogger logger, string name, string mode, string links, string socket, string routers, string metrics, string otlp);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Service router {Name} accepts registrations without a key: anyone on the link can register any service. Set Serval:Router:Key or Serval:Router:KeyFile (and the same key in the hosts' Serval:Registration).")]
    private static partial void RouterWithoutKey(ILogger logger, string name);

    public async ValueTask DisposeAsync()
    {
        _metrics?.Dispose();
        _otlp?.Dispose();
        await _control.DisposeAsync().ConfigureAwait(false);
        await _apps.DisposeAsync().ConfigureAwait(false);
        await Host.DisposeAsync().ConfigureAwait(false);
        foreach (var o in _owned)
        {
            o.Dispose();
        }
    }
}
