namespace Serval.Daemon;

/// <summary>
/// <c>Serval:Registration</c> (host mode): register every service bound on this host with service routers, refresh
/// it on a lease, withdraw it on close (docs/control-protocol.md).
/// </summary>
internal sealed class RegistrationSettings
{
    /// <summary>The routers, <c>address[:port]</c> (no port: the UDP default 54325); each registration goes to all of them, or to one (<see cref="RouterSelection"/>).</summary>
    public List<string> Routers { get; set; } = [];

    /// <summary><c>All</c> (default): register with every router; <c>One</c>: with one router of a fleet at a time, the next when it stops answering.</summary>
    public Serval.Stack.ControlPlane.RouterSelection RouterSelection { get; set; } = Serval.Stack.ControlPlane.RouterSelection.All;

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

    /// <summary>Where self-certifying serviceIDs live: registrations there must be signed by the serviceID's key (docs/control-protocol.md §5.1).</summary>
    public List<string> SelfCertifyingPrefixes { get; set; } = [];

    /// <summary>Upstream refresh interval, milliseconds (default 1000).</summary>
    public int UpstreamRefreshMs { get; set; } = 1000;

    /// <summary>Upstream lease, milliseconds (default 3000).</summary>
    public int UpstreamLeaseMs { get; set; } = 3000;

    /// <summary>Hosts (<c>address[:port]</c>, no port: any port) drained from the start.</summary>
    public List<string> Drain { get; set; } = [];

    /// <summary>Publish the registrations in DNS with RFC 2136 updates (docs/resolution.md); null publishes nothing.</summary>
    public DnsUpdateSettings? DnsUpdate { get; set; }

    /// <summary>A fleet of routers sharing their registrations through etcd (docs/router-fleet.md); null: this router keeps them in memory.</summary>
    public FleetSettings? Fleet { get; set; }
}

/// <summary><c>Serval:Router:Fleet</c>: the etcd cluster the routers of a fleet share their registrations through.</summary>
internal sealed class FleetSettings
{
    /// <summary>Client URLs of the etcd members, e.g. <c>http://10.0.0.1:2379</c> (https for TLS).</summary>
    public List<string> Endpoints { get; set; } = [];

    /// <summary>The key prefix of the fleet's state (default <c>/serval/fleet/</c>); routers of one fleet use the same.</summary>
    public string Root { get; set; } = "/serval/fleet/";

    /// <summary>This router's name in the fleet view (default: Serval:Name).</summary>
    public string? Name { get; set; }

    /// <summary>PEM file of the CA that signed the members' certificates (https endpoints; default: the system's trust store).</summary>
    public string? CaFile { get; set; }

    /// <summary>PEM client certificate (https endpoints with client authentication), with <see cref="KeyFile"/>.</summary>
    public string? CertFile { get; set; }

    /// <summary>PEM key of <see cref="CertFile"/>.</summary>
    public string? KeyFile { get; set; }

    /// <summary>etcd user (authentication on), with <see cref="Password"/> or <see cref="PasswordFile"/>.</summary>
    public string? Username { get; set; }

    /// <summary>etcd password.</summary>
    public string? Password { get; set; }

    /// <summary>A file holding the etcd password; an alternative to <see cref="Password"/>.</summary>
    public string? PasswordFile { get; set; }

    /// <summary>Deadline of one etcd request, milliseconds (default 2000).</summary>
    public int RequestTimeoutMs { get; set; } = 2000;

    /// <summary>Most operations per transaction (default 128, etcd's default --max-txn-ops).</summary>
    public int MaxTxnOps { get; set; } = 128;
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
