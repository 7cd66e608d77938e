using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Serval.Links;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Daemon;

/// <summary>
/// A running servald: one <see cref="ServalHost"/> with the configured links, the control endpoint on a Unix domain
/// socket and, when configured, the Prometheus endpoint. <see cref="DaemonService"/> runs one inside the Generic Host;
/// tests start one directly.
/// </summary>
internal sealed class ServalDaemon : IAsyncDisposable
{
    private readonly ControlServer _control;
    private readonly AppServer _apps;
    private readonly MetricsExporter? _metrics;

    private ServalDaemon(ServalHost host, ControlServer control, AppServer apps, MetricsExporter? metrics, DaemonOptions options)
    {
        Host = host;
        _control = control;
        _apps = apps;
        _metrics = metrics;
        Options = options;
    }

    public ServalHost Host { get; }

    public DaemonOptions Options { get; }

    public string ControlSocket => _control.Path;

    public static async Task<ServalDaemon> StartAsync(DaemonOptions options, ILoggerFactory loggerFactory, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var metricsPrefix = options.MetricsUrl is { Length: > 0 } url ? MetricsExporter.ValidatePrefix(url) : null;
        var registerWith = LinkAddress.None;
        if (!string.IsNullOrEmpty(options.RegisterWithRouter))
        {
            try
            {
                registerWith = LinkAddress.Parse(options.RegisterWithRouter);
            }
            catch (FormatException e)
            {
                throw new DaemonException($"Serval:RegisterWithRouter: {e.Message}", e);
            }

            if (registerWith.Port == 0)
            {
                registerWith = registerWith.WithPort(ServalInfo.DefaultUdpPort);
            }
        }

        var links = CreateLinks(options);
        ServalHost host;
        try
        {
            var registration = ControlPlaneConfig.Registration(options, links);
            var router = ControlPlaneConfig.Router(options, links);
            host = await ServalHost.StartAsync(
                new ServalHostOptions
                {
                    Name = options.Name,
                    Links = links,
                    Engine = EngineOptions.Default with { Mode = options.Mode, TimeWait = options.TimeWait ?? EngineOptions.Default.TimeWait },
                    LoggerFactory = loggerFactory,
                    Registration = registration ?? Stack.ControlPlane.HostControllerOptions.Default,
                    RouterControl = router,
                    RegisterWithRouter = registerWith,
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ArgumentException or DaemonException)
        {
            foreach (var l in links)
            {
                l.Dispose();
            }

            throw e as DaemonException ?? new DaemonException($"invalid configuration: {e.Message}", e);
        }

        ControlServer? control = null;
        MetricsExporter? metrics = null;
        var apps = new AppServer(host, loggerFactory.CreateLogger<AppServer>());
        try
        {
            foreach (var drained in ControlPlaneConfig.InitialDrains(options))
            {
                if (!host.IsRegistrationRouter)
                {
                    throw new DaemonException("Serval:Router:Drain needs the router controller (ServiceRouter mode, Serval:Router:Enabled)");
                }

                await host.SetRouterDrainingAsync(drained, null, true, cancellationToken).ConfigureAwait(false);
            }

            control = ControlServer.Start(options.ControlSocketOrDefault, new ControlHandler(host), loggerFactory.CreateLogger<ControlServer>(), apps);
            if (metricsPrefix is not null)
            {
                metrics = MetricsExporter.Start(metricsPrefix, host.Name);
            }
        }
        catch
        {
            if (control is not null)
            {
                await control.DisposeAsync().ConfigureAwait(false);
            }

            await apps.DisposeAsync().ConfigureAwait(false);
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new ServalDaemon(host, control, apps, metrics, options);
    }

    private static List<ServalLink> CreateLinks(DaemonOptions options)
    {
        var udp = options.Udp is { Count: > 0 } configured ? configured : [new UdpEndpoint()];
        var links = new List<ServalLink>();
        try
        {
            foreach (var u in udp)
            {
                if (!IPAddress.TryParse(u.Address, out var address))
                {
                    throw new DaemonException($"Serval:Udp: '{u.Address}' is not an IP address");
                }

                try
                {
                    links.Add(new UdpLink(address, u.Port));
                }
                catch (Exception e) when (e is SocketException or ArgumentException)
                {
                    throw new DaemonException($"cannot open UDP link on {address}:{u.Port}: {e.Message}", e);
                }

                if (options.RawIp)
                {
                    if (!RawIpLink.IsSupported)
                    {
                        throw new DaemonException("Serval:RawIp is on but raw IP sockets are not available (needs Linux and CAP_NET_RAW)");
                    }

                    links.Add(new RawIpLink(address));
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

    public async ValueTask DisposeAsync()
    {
        _metrics?.Dispose();
        await _control.DisposeAsync().ConfigureAwait(false);
        await _apps.DisposeAsync().ConfigureAwait(false);
        await Host.DisposeAsync().ConfigureAwait(false);
    }
}
