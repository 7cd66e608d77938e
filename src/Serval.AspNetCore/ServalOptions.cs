using System.Net;
using Serval.Links;
using Serval.Stack;
using Serval.Wire;

namespace Serval.AspNetCore;

/// <summary>
/// The Serval host of an application, as configuration gives it (<see cref="ServalServiceCollectionExtensions.AddServal(Microsoft.Extensions.DependencyInjection.IServiceCollection, Action{ServalOptions}?)"/>,
/// section <c>Serval</c> by default): the same keys as servald's for what an application host needs. Settings that
/// configuration cannot carry (link objects, keys, resolvers) go through <see cref="ConfigureHost"/>. Validated when
/// the application starts.
/// </summary>
public sealed class ServalOptions
{
    /// <summary>The default configuration section.</summary>
    public const string Section = "Serval";

    /// <summary>The host's name (logs, the <c>serval.host</c> metric tag). Default: <c>serval</c>.</summary>
    public string Name { get; set; } = "serval";

    /// <summary>
    /// Attach to a running servald through this control socket instead of running an engine in the application
    /// (<see cref="ServalHost.AttachAsync"/>); <c>default</c> means <see cref="ServalHost.DefaultDaemonSocketPath"/>.
    /// Null (default): the host is embedded. An attached host takes no other setting but <see cref="Name"/>.
    /// </summary>
    public string? Daemon { get; set; }

    /// <summary>Host (default) or service router.</summary>
    public EngineMode Mode { get; set; } = EngineMode.Host;

    /// <summary>UDP links, one interface each, in this order (servald's <c>Serval:Udp</c>).</summary>
    public List<ServalUdpLinkOptions> Udp { get; set; } = [];

    /// <summary>A service router (<c>address[:port]</c>) to register the bound services with; null registers nowhere (unless discovered).</summary>
    public string? RegisterWithRouter { get; set; }

    /// <summary>A service router (<c>address[:port]</c>) every service not served here resolves through; null: none.</summary>
    public string? DefaultRouter { get; set; }

    /// <summary>Register with the routers heard on links with a broadcast address when no router is configured (default true).</summary>
    public bool RouterDiscovery { get; set; } = true;

    /// <summary>Follow the operating system's interfaces (link down and up, Linux; default true).</summary>
    public bool MonitorInterfaces { get; set; } = true;

    /// <summary>
    /// Code-only: changes the host options built from this configuration (links of other kinds, registration keys,
    /// resolvers, stream settings). The application's logger and meter factories are already set on them.
    /// </summary>
    public Func<ServalHostOptions, ServalHostOptions>? ConfigureHost { get; set; }

    /// <summary>
    /// Every problem of these settings, each naming its configuration key; empty when they are valid. Nothing is
    /// bound or opened: the links are checked by their addresses.
    /// </summary>
    internal List<string> Check()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(Name))
        {
            errors.Add($"{Section}:Name is empty: a Serval host needs a name.");
        }

        if (DaemonSocketPath is not null)
        {
            if (Udp.Count > 0 || !string.IsNullOrEmpty(RegisterWithRouter) || !string.IsNullOrEmpty(DefaultRouter))
            {
                errors.Add($"{Section}:Daemon attaches to servald, which owns the links and routers: remove {Section}:Udp, {Section}:RegisterWithRouter and {Section}:DefaultRouter (servald's configuration has them).");
            }

            return errors;
        }

        var families = new HashSet<System.Net.Sockets.AddressFamily>();
        for (var i = 0; i < Udp.Count; i++)
        {
            if (Udp[i] is not { } u)
            {
                errors.Add($"{Section}:Udp:{i} is empty.");
                continue;
            }

            if (!IPAddress.TryParse(u.Address, out var address))
            {
                errors.Add($"{Section}:Udp:{i}:Address '{u.Address}' is not an IP address.");
            }
            else if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
            {
                errors.Add($"{Section}:Udp:{i}:Address '{u.Address}' is a wildcard: a link binds one address.");
            }
            else
            {
                families.Add(address.AddressFamily);
            }

            if (u.Port is < 0 or > 65535)
            {
                errors.Add($"{Section}:Udp:{i}:Port {u.Port} is not a UDP port (0 to 65535; 0 picks a free one).");
            }
        }

        foreach (var (key, text) in new[] { (nameof(RegisterWithRouter), RegisterWithRouter), (nameof(DefaultRouter), DefaultRouter) })
        {
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            if (!TryParseRouter(text, out var router))
            {
                errors.Add($"{Section}:{key} '{text}' is not an address[:port].");
            }
            else if (ConfigureHost is null && !families.Contains(router.Family))
            {
                errors.Add($"{Section}:{key} {text}: no link of {Section}:Udp has its address family.");
            }
        }

        return errors;
    }

    /// <summary>The embedded host's options, with the application's logging and metrics; the links are bound here.</summary>
    /// <exception cref="InvalidOperationException">A link cannot be bound (its configuration key named).</exception>
    internal ServalHostOptions ToHostOptions(Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory, System.Diagnostics.Metrics.IMeterFactory? meterFactory)
    {
        var links = new List<ServalLink>();
        try
        {
            for (var i = 0; i < Udp.Count; i++)
            {
                var address = IPAddress.Parse(Udp[i].Address);
                try
                {
                    links.Add(new UdpLink(address, Udp[i].Port));
                }
                catch (System.Net.Sockets.SocketException e)
                {
                    throw new InvalidOperationException($"{Section}:Udp:{i}: cannot bind {new IPEndPoint(address, Udp[i].Port)}: {e.Message}", e);
                }
            }

            if (!TryParseRouter(RegisterWithRouter, out var register) || !TryParseRouter(DefaultRouter, out var defaultRouter))
            {
                throw new InvalidOperationException($"{Section}:{nameof(RegisterWithRouter)} or {Section}:{nameof(DefaultRouter)} is not an address[:port].");
            }

            var options = new ServalHostOptions
            {
                Name = Name,
                Links = links,
                Engine = EngineOptions.Default with { Mode = Mode },
                RegisterWithRouter = register,
                DefaultRouter = defaultRouter,
                RouterDiscovery = RouterDiscovery ? ServalHostOptions.Default.RouterDiscovery : null,
                MonitorInterfaces = MonitorInterfaces,
                LoggerFactory = loggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance,
                MeterFactory = meterFactory,
            };
            return ConfigureHost is { } configure ? configure(options) ?? throw new InvalidOperationException($"{nameof(ServalOptions)}.{nameof(ConfigureHost)} returned null.") : options;
        }
        catch
        {
            foreach (var link in links)
            {
                link.Dispose();
            }

            throw;
        }
    }

    private static bool TryParseRouter(string? text, out LinkAddress address)
    {
        address = LinkAddress.None;
        if (string.IsNullOrWhiteSpace(text))
        {
            return true;
        }

        try
        {
            address = LinkAddress.Parse(text); // port 0: the link's own port
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>The daemon socket to attach to, or null for an embedded host.</summary>
    internal string? DaemonSocketPath =>
        string.IsNullOrEmpty(Daemon) ? null : Daemon == "default" ? ServalHost.DefaultDaemonSocketPath : Daemon;
}

/// <summary>A UDP link of <see cref="ServalOptions.Udp"/>.</summary>
public sealed class ServalUdpLinkOptions
{
    /// <summary>The local IP address.</summary>
    public string Address { get; set; } = string.Empty;

    /// <summary>The UDP port (default 54325; 0 picks a free one).</summary>
    public int Port { get; set; } = ServalInfo.DefaultUdpPort;
}
