using System.Globalization;
using System.Net;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval.Daemon;

/// <summary>One link servald will open: a UDP link, or a raw IP link on the same address (<c>Serval:RawIp</c>).</summary>
internal readonly record struct LinkPlan(IPAddress Address, int Port, bool Raw)
{
    /// <summary>The address family as the engine sees it (IPv4-mapped IPv6 addresses count as IPv4).</summary>
    public System.Net.Sockets.AddressFamily Family => LinkAddress.FromIPAddress(Address).Family;
}

/// <summary>
/// Everything servald derives from its <see cref="DaemonOptions"/>, checked before anything binds a socket: every
/// mistake is a <see cref="DaemonException"/> naming the key.
/// </summary>
internal sealed class DaemonPlan
{
    private DaemonPlan(DaemonOptions options)
    {
        Options = options;
    }

    public DaemonOptions Options { get; }

    /// <summary>The links in the order they are opened (interface 1 is the first).</summary>
    public required IReadOnlyList<LinkPlan> Links { get; init; }

    /// <summary>The link policies (<c>Serval:LinkPolicies</c>): their links come after <see cref="Links"/>.</summary>
    public required IReadOnlyList<LinkPolicy> Policies { get; init; }

    public required EngineOptions Engine { get; init; }

    public required LinkAddress RegisterWith { get; init; }

    public required HostControllerOptions? Registration { get; init; }

    public required RouterControllerOptions? Router { get; init; }

    public required IReadOnlyList<LinkAddress> Drains { get; init; }

    /// <summary>The etcd registry the router shares its registrations through (<c>Serval:Router:Fleet</c>), or null.</summary>
    public required EtcdRegistryOptions? Fleet { get; init; }

    /// <summary>Resolution on demand (<c>Serval:Resolver</c>), or null.</summary>
    public required ResolverPlan? Resolver { get; init; }

    /// <summary>Where the router publishes its registrations (<c>Serval:Router:DnsUpdate</c>), or null.</summary>
    public required Resolution.DnsUpdateOptions? Publish { get; init; }

    public required string? MetricsPrefix { get; init; }

    /// <summary>Whether this daemon accepts registrations from anyone on the link (a router controller with no key).</summary>
    public bool RouterWithoutKey => Router is { Key.IsEmpty: true };

    /// <summary>Checks <paramref name="options"/> and works out what to start; binds nothing.</summary>
    /// <exception cref="DaemonException">An option is invalid.</exception>
    public static DaemonPlan Create(DaemonOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.Name))
        {
            throw new DaemonException("Serval:Name must not be empty");
        }

        if (!Enum.IsDefined(options.Mode))
        {
            throw new DaemonException($"Serval:Mode must be one of {string.Join(", ", Enum.GetNames<EngineMode>())}");
        }

        if (options.TimeWait is { } tw && tw <= TimeSpan.Zero)
        {
            throw new DaemonException($"Serval:TimeWait must be positive (was {tw.ToString("c", CultureInfo.InvariantCulture)})");
        }

        var engine = EngineOptions.Default with { Mode = options.Mode, TimeWait = options.TimeWait ?? EngineOptions.Default.TimeWait };
        try
        {
            engine.Validate();
        }
        catch (ArgumentException e)
        {
            throw new DaemonException($"invalid engine options: {e.Message}", e);
        }

        var metricsPrefix = options.MetricsUrl is { Length: > 0 } url ? MetricsExporter.ValidatePrefix(url) : null;
        options.Otlp?.Validate();
        var policies = PlanPolicies(options);
        var links = PlanLinks(options, policies.Count > 0);
        var registerWith = LinkAddress.None;
        if (!string.IsNullOrEmpty(options.RegisterWithRouter))
        {
            registerWith = ControlPlaneConfig.ParseAddress(options.RegisterWithRouter, "Serval:RegisterWithRouter");
            if (registerWith.Port == 0)
            {
                registerWith = registerWith.WithPort(ServalInfo.DefaultUdpPort);
            }

            if (!links.Any(l => l.Family == registerWith.Family) && !policies.Any(p => Covers(p, registerWith.Family)))
            {
                throw new DaemonException($"Serval:RegisterWithRouter: no link of this host can reach {registerWith}");
            }
        }

        var registration = ControlPlaneConfig.Registration(options, links, policies);
        var router = ControlPlaneConfig.Router(options, links, policies);
        var drains = ControlPlaneConfig.InitialDrains(options);
        if (drains.Count > 0 && router is null)
        {
            throw new DaemonException("Serval:Router:Drain needs the router controller (ServiceRouter mode, Serval:Router:Enabled)");
        }

        var resolver = ResolverConfig.Plan(options, registration is not null || !registerWith.IsNone);
        return new DaemonPlan(options)
        {
            Resolver = resolver,
            Publish = ResolverConfig.Publish(options, router is not null),
            Links = links,
            Policies = policies,
            Engine = engine,
            RegisterWith = registerWith,
            Registration = registration,
            Router = router,
            Drains = drains,
            Fleet = ControlPlaneConfig.Fleet(options, router is not null),
            MetricsPrefix = metricsPrefix,
        };
    }

    /// <summary>Whether <paramref name="policy"/> creates links of <paramref name="family"/>.</summary>
    public static bool Covers(LinkPolicy policy, System.Net.Sockets.AddressFamily family) =>
        family == System.Net.Sockets.AddressFamily.InterNetwork ? policy.IPv4 : family == System.Net.Sockets.AddressFamily.InterNetworkV6 && policy.IPv6;

    private static List<LinkPolicy> PlanPolicies(DaemonOptions options)
    {
        var policies = new List<LinkPolicy>();
        var configured = options.LinkPolicies ?? [];
        for (var i = 0; i < configured.Count; i++)
        {
            var key = $"Serval:LinkPolicies:{i.ToString(CultureInfo.InvariantCulture)}";
            var policy = configured[i].ToPolicy();
            try
            {
                policy.Validate();
            }
            catch (ArgumentException e)
            {
                throw new DaemonException($"{key}: {e.Message}", e);
            }

            if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
            {
                throw new DaemonException($"{key}: links that follow addresses need 64-bit Linux (rtnetlink)");
            }

            if (policy.Kind == LinkKind.RawIp && !RawIpLink.IsSupported)
            {
                throw new DaemonException($"{key}:Kind: RawIp links need raw IP sockets (Linux and CAP_NET_RAW)");
            }

            policies.Add(policy);
        }

        return policies;
    }

    private static List<LinkPlan> PlanLinks(DaemonOptions options, bool policies)
    {
        // No explicit link and no policy: one on loopback. With policies the addresses bring the links.
        var udp = options.Udp is { Count: > 0 } configured ? configured : policies ? [] : [new UdpEndpoint()];
        if (options.RawIp && !RawIpLink.IsSupported)
        {
            throw new DaemonException("Serval:RawIp is on but raw IP sockets are not available (needs Linux and CAP_NET_RAW)");
        }

        var links = new List<LinkPlan>();
        for (var i = 0; i < udp.Count; i++)
        {
            var key = $"Serval:Udp:{i.ToString(CultureInfo.InvariantCulture)}";
            var u = udp[i];
            if (!IPAddress.TryParse(u.Address, out var address))
            {
                throw new DaemonException($"{key}:Address: '{u.Address}' is not an IP address");
            }

            if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
            {
                throw new DaemonException($"{key}:Address: {address} is a wildcard; a link needs a specific local address");
            }

            if (u.Port is < IPEndPoint.MinPort or > IPEndPoint.MaxPort)
            {
                throw new DaemonException($"{key}:Port: {u.Port.ToString(CultureInfo.InvariantCulture)} is not a port (0 to 65535; 0 picks a free one)");
            }

            if (u.Port != 0 && links.Any(l => !l.Raw && l.Port == u.Port && l.Address.Equals(address)))
            {
                throw new DaemonException($"{key}: {new IPEndPoint(address, u.Port)} is listed twice");
            }

            links.Add(new LinkPlan(address, u.Port, Raw: false));
            if (options.RawIp)
            {
                links.Add(new LinkPlan(address, 0, Raw: true));
            }
        }

        return links;
    }
}
