namespace Serval.Daemon;

/// <summary>
/// <c>Serval:Resolver</c>: resolution on demand (docs/resolution.md). A default DELAY rule holds the first packet of
/// every service no other rule resolves; the static file, then DNS, then (host mode) the registration routers are asked.
/// </summary>
internal sealed class ResolverSettings
{
    /// <summary>A file of services and their addresses (<c>SERVICE address[:port][*weight] …</c>), read again when it changes.</summary>
    public string? StaticFile { get; set; }

    /// <summary>How long an answer from the static file is used, in milliseconds (default 60000).</summary>
    public int StaticTtlMs { get; set; } = 60_000;

    /// <summary>DNS records (SRV, else A/AAAA) under a zone; null asks no DNS server.</summary>
    public DnsSettings? Dns { get; set; }

    /// <summary>Host mode: also ask the registration routers (a Resolve message) when the other sources have no answer.</summary>
    public bool Routers { get; set; }

    /// <summary>Priority of the default DELAY rule (default 20, above the default routes toward routers).</summary>
    public uint DelayPriority { get; set; } = 20;

    /// <summary>How long one resolution may take, in milliseconds (default 4000; the engine holds a packet 5 s).</summary>
    public int TimeoutMs { get; set; } = 4000;

    /// <summary>Most answers installed at once (default 4096).</summary>
    public int MaxAnswers { get; set; } = 4096;

    /// <summary>Longest time a negative answer is remembered, in milliseconds (default 2000).</summary>
    public int NegativeTtlMs { get; set; } = 2000;
}

/// <summary><c>Serval:Resolver:Dns</c>: the DNS resolver's servers, zone and limits.</summary>
internal sealed class DnsSettings
{
    /// <summary>DNS servers, <c>address[:port]</c> (no port: 53), asked in order.</summary>
    public List<string> Servers { get; set; } = [];

    /// <summary>The zone the records are under.</summary>
    public string? Zone { get; set; }

    /// <summary>Service names looked up by name (<c>NAME.ZONE</c>) instead of by serviceID.</summary>
    public List<string> Names { get; set; } = [];

    /// <summary>Time to wait for one server, in milliseconds (default 1000).</summary>
    public int TimeoutMs { get; set; } = 1000;

    /// <summary>Rounds over the servers (default 2).</summary>
    public int Attempts { get; set; } = 2;

    /// <summary>Longest use of a positive answer, in seconds, whatever the TTL (default 300).</summary>
    public int MaxTtlSeconds { get; set; } = 300;

    /// <summary>Negative answers: at most this long, in seconds, and this long without an SOA (default 5).</summary>
    public int NegativeTtlSeconds { get; set; } = 5;
}
