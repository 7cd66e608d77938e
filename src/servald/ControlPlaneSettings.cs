namespace Serval.Daemon;

/// <summary>
/// <c>Serval:Registration</c> (host mode): register every service bound on this host with service routers, refresh
/// it on a lease, withdraw it on close (docs/control-protocol.md).
/// </summary>
internal sealed class RegistrationSettings
{
    /// <summary>The routers, <c>address[:port]</c> (no port: the UDP default 54325); each registration goes to all of them.</summary>
    public List<string> Routers { get; set; } = [];

    /// <summary>Refresh interval in milliseconds (default 1000).</summary>
    public int RefreshMs { get; set; } = 1000;

    /// <summary>Lease asked for, in milliseconds (default 3000; must exceed the refresh interval).</summary>
    public int LeaseMs { get; set; } = 3000;

    /// <summary>The routers' serviceID (default: the well-known router serviceID).</summary>
    public string? ServiceId { get; set; }

    /// <summary>Weight of every registration (default 1).</summary>
    public uint Weight { get; set; } = 1;

    /// <summary>Shared HMAC key, hex or base64 (at least 16 bytes); <c>hex:</c> or <c>base64:</c> forces the encoding.</summary>
    public string? Key { get; set; }

    /// <summary>A file holding the key (same text forms); an alternative to <see cref="Key"/>.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Whether to install the default rule (prefix /0) toward the routers (default true).</summary>
    public bool DefaultRoute { get; set; } = true;
}

/// <summary><c>Serval:Router</c> (ServiceRouter mode): the router controller that accepts registrations.</summary>
internal sealed class RouterSettings
{
    /// <summary>Whether to accept registrations (default true in ServiceRouter mode).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Announce the router with router advertisements on every link with a broadcast address (default true).</summary>
    public bool Advertise { get; set; } = true;

    /// <summary>The serviceID the controller listens on (default: the well-known router serviceID).</summary>
    public string? ServiceId { get; set; }

    /// <summary>Shortest lease granted, milliseconds (default 500).</summary>
    public int MinLeaseMs { get; set; } = 500;

    /// <summary>Longest lease granted, milliseconds (default 60000).</summary>
    public int MaxLeaseMs { get; set; } = 60_000;

    /// <summary>Shared HMAC key, hex or base64 (at least 16 bytes); with a key unauthenticated requests are ignored.</summary>
    public string? Key { get; set; }

    /// <summary>A file holding the key; an alternative to <see cref="Key"/>.</summary>
    public string? KeyFile { get; set; }

    /// <summary>Hierarchy: upstream routers (<c>address[:port]</c>) this router registers its prefixes with.</summary>
    public List<string> Upstream { get; set; } = [];

    /// <summary>The upstream routers' serviceID (must differ from this router's own).</summary>
    public string? UpstreamServiceId { get; set; }

    /// <summary>Prefixes exported upstream in place of the registrations they cover.</summary>
    public List<string> Aggregates { get; set; } = [];

    /// <summary>Upstream refresh interval, milliseconds (default 1000).</summary>
    public int UpstreamRefreshMs { get; set; } = 1000;

    /// <summary>Upstream lease, milliseconds (default 3000).</summary>
    public int UpstreamLeaseMs { get; set; } = 3000;

    /// <summary>Hosts (<c>address[:port]</c>, no port: any port) drained from the start.</summary>
    public List<string> Drain { get; set; } = [];

    /// <summary>Publish the registrations in DNS with RFC 2136 updates (docs/resolution.md); null publishes nothing.</summary>
    public DnsUpdateSettings? DnsUpdate { get; set; }
}

/// <summary><c>Serval:Router:DnsUpdate</c>: the zone's primary server and the records' TTL.</summary>
internal sealed class DnsUpdateSettings
{
    /// <summary>The server accepting updates, <c>address[:port]</c> (no port: 53).</summary>
    public string? Server { get; set; }

    /// <summary>The zone.</summary>
    public string? Zone { get; set; }

    /// <summary>TTL of the published records in seconds (default 10).</summary>
    public int TtlSeconds { get; set; } = 10;
}
