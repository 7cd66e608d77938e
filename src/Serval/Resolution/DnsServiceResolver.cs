using System.Net;
using Serval.Resolution.Dns;
using Serval.Wire;

namespace Serval.Resolution;

/// <summary>Settings of a <see cref="DnsServiceResolver"/>.</summary>
public sealed record DnsResolverOptions
{
    /// <summary>The DNS servers asked, in order (address and port, e.g. 127.0.0.1:53).</summary>
    public IReadOnlyList<IPEndPoint> Servers { get; init; } = [];

    /// <summary>The zone under which the records are, e.g. <c>serval.example.org</c>.</summary>
    public string Zone { get; init; } = string.Empty;

    /// <summary>
    /// Service names whose records are named after the name (<c>NAME.ZONE</c>) rather than the serviceID: a serviceID
    /// equal to <see cref="ServiceId.FromName(string)"/> of one of them is looked up by that name.
    /// </summary>
    public IReadOnlyList<string> Names { get; init; } = [];

    /// <summary>How long to wait for one server's answer (default 1 s).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Rounds over the servers (default 2).</summary>
    public int Attempts { get; init; } = 2;

    /// <summary>The longest a positive answer is used, whatever the records' TTL (default 5 min).</summary>
    public TimeSpan MaxTtl { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The shortest (records with TTL 0 are used this long; default 1 s).</summary>
    public TimeSpan MinTtl { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a negative answer holds when the server sends no SOA, and at most (default 5 s).</summary>
    public TimeSpan NegativeTtl { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Servers, nameof(Servers));
        ArgumentNullException.ThrowIfNull(Names, nameof(Names));
        if (Servers.Count == 0 || Servers.Any(s => s is null || s.Port == 0))
        {
            throw new ArgumentException("A DNS resolver needs at least one server, each with a port.", nameof(Servers));
        }

        if (string.IsNullOrWhiteSpace(Zone) || !DnsWriter.IsValidName(Zone) || Zone.Trim('.').Length == 0)
        {
            throw new ArgumentException($"'{Zone}' is not a DNS zone name (labels of 1-63 printable ASCII characters).", nameof(Zone));
        }

        foreach (var name in Names)
        {
            if (name is null || !DnsWriter.IsValidName(DnsServiceResolver.Join(name, Zone)) || name.Trim('.').Length == 0 || name.EndsWith('.'))
            {
                throw new ArgumentException($"The service name '{name}' does not make a DNS name under {Zone}.", nameof(Names));
            }
        }

        if (Timeout <= TimeSpan.Zero || Attempts < 1 || Attempts > 10)
        {
            throw new ArgumentException("Timeout must be positive and Attempts 1 to 10.", nameof(Timeout));
        }

        if (MinTtl <= TimeSpan.Zero || MaxTtl < MinTtl || NegativeTtl <= TimeSpan.Zero)
        {
            throw new ArgumentException("MinTtl and NegativeTtl must be positive and MaxTtl at least MinTtl.", nameof(MaxTtl));
        }
    }
}

/// <summary>
/// Answers from DNS (docs/resolution.md, "DNS records"). The records of a serviceID are named
/// <c>H1.H2.ZONE</c>, H1 and H2 being the first and last 32 hex digits of the serviceID (a DNS label holds at most 63
/// characters), or <c>NAME.ZONE</c> for a service named in <see cref="DnsResolverOptions.Names"/>. Asked at once:
/// <list type="bullet">
/// <item><c>SRV</c> at <c>_serval._udp.</c> that name — the targets of the lowest priority, each with its port and
/// weight, addresses from the answer's additional section or from A/AAAA queries of the target (at most 8 targets);</item>
/// <item>otherwise <c>A</c> and <c>AAAA</c> at the name itself — each address on the default UDP port, weight 1.</item>
/// </list>
/// The answer's TTL is the smallest TTL of the records used, within [<see cref="DnsResolverOptions.MinTtl"/>,
/// <see cref="DnsResolverOptions.MaxTtl"/>]. NXDOMAIN or no such records is a negative answer held for the zone's
/// negative TTL (RFC 2308: the SOA's TTL and MINIMUM, the smaller), at most <see cref="DnsResolverOptions.NegativeTtl"/>.
/// A server that does not answer, or answers SERVFAIL or REFUSED, is a failure (an exception).
/// </summary>
public sealed class DnsServiceResolver : IAsyncServiceResolver
{
    /// <summary>The service and protocol labels of the SRV records.</summary>
    public const string SrvPrefix = "_serval._udp";

    private const int MaxTargets = 8;
    private const int MaxCNames = 8;

    private readonly DnsClient _client;
    private readonly Dictionary<ServiceId, string> _names = [];

    /// <summary>A resolver with <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public DnsServiceResolver(DnsResolverOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        _client = new DnsClient(options.Servers, options.Timeout, options.Attempts);
        foreach (var name in options.Names)
        {
            _names[ServiceId.FromName(name)] = name;
        }
    }

    /// <summary>The settings.</summary>
    public DnsResolverOptions Options { get; }

    /// <summary>The DNS name of the records of <paramref name="service"/> under <paramref name="zone"/> (<c>H1.H2.ZONE</c>).</summary>
    public static string RecordName(ServiceId service, string zone)
    {
        ArgumentNullException.ThrowIfNull(zone);
        var hex = service.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        return Join($"{hex[..32]}.{hex[32..]}", zone);
    }

    /// <summary>The name this resolver looks up for <paramref name="service"/>.</summary>
    public string RecordName(ServiceId service) =>
        _names.TryGetValue(service, out var name) ? Join(name, Options.Zone) : RecordName(service, Options.Zone);

    /// <inheritdoc/>
    public async ValueTask<ResolverAnswer> ResolveAsync(ServiceId service, CancellationToken cancellationToken)
    {
        var name = RecordName(service);
        var srvTask = _client.QueryAsync(Join(SrvPrefix, name), DnsType.Srv, cancellationToken);
        var aTask = _client.QueryAsync(name, DnsType.A, cancellationToken);
        var aaaaTask = _client.QueryAsync(name, DnsType.Aaaa, cancellationToken);
        Exception? failure = null;
        var negative = Options.NegativeTtl;
        var srv = await Outcome(srvTask).ConfigureAwait(false);
        if (srv is { } srvMessage)
        {
            var records = Chain(srvMessage, Join(SrvPrefix, name), DnsType.Srv, out var chainTtl);
            var usable = records.Where(r => r.Srv is { } s && s.Target.Length > 0).ToList();
            if (records.Count > 0 && usable.Count == 0)
            {
                _ = Observe(aTask);
                _ = Observe(aaaaTask);
                return ResolverAnswer.NotFound(negative); // target "." (RFC 2782): decidedly not available
            }

            if (usable.Count > 0)
            {
                var answer = await FromSrvAsync(srvMessage, usable, chainTtl, service, cancellationToken).ConfigureAwait(false);
                _ = Observe(aTask);
                _ = Observe(aaaaTask);
                return answer;
            }
        }

        var targets = new List<ResolverTarget>();
        var ttl = Options.MaxTtl;
        foreach (var task in new[] { aTask, aaaaTask })
        {
            if (await Outcome(task).ConfigureAwait(false) is not { } m)
            {
                continue;
            }

            foreach (var r in Chain(m, name, task == aTask ? DnsType.A : DnsType.Aaaa, out var chainTtl))
            {
                if (r.Address is { } address && targets.Count < MaxTargets)
                {
                    targets.Add(new ResolverTarget(LinkAddress.FromIPAddress(address, 0), 1));
                    ttl = Min(ttl, Seconds(Math.Min(r.Ttl, chainTtl)));
                }
            }
        }

        if (targets.Count > 0)
        {
            return ResolverAnswer.Found(ServicePrefix.Exact(service), targets, Clamp(ttl));
        }

        if (failure is not null)
        {
            throw new DnsException($"DNS lookup of {name} failed: {failure.Message}", failure);
        }

        return ResolverAnswer.NotFound(negative);

        // A message whose answer is definitive (NOERROR or NXDOMAIN) or null; a failure is kept for the end.
        async Task<DnsMessage?> Outcome(Task<DnsMessage> task)
        {
            try
            {
                var m = await task.ConfigureAwait(false);
                if (m.ResponseCode is DnsResponseCode.NoError or DnsResponseCode.NXDomain)
                {
                    negative = Min(negative, NegativeTtl(m));
                    return m;
                }

                failure ??= new DnsException($"the server answered {m.ResponseCode}");
            }
            catch (DnsException e)
            {
                failure ??= e;
            }

            return null;
        }
    }

    /// <summary>The records of <paramref name="type"/> for <paramref name="name"/> in the answer section, following at most 8 CNAMEs; their smallest CNAME TTL.</summary>
    private static List<DnsRecord> Chain(DnsMessage m, string name, DnsType type, out uint ttl)
    {
        ttl = uint.MaxValue;
        var current = name;
        for (var hop = 0; hop <= MaxCNames; hop++)
        {
            var cname = m.Answers.FirstOrDefault(r => r.Type == DnsType.CName && r.Class == DnsClass.In && DnsMessage.SameName(r.Name, current));
            if (cname?.CNameTarget is not { } next)
            {
                break;
            }

            ttl = Math.Min(ttl, cname.Ttl);
            current = next;
        }

        var found = current;
        return [.. m.Answers.Where(r => r.Type == type && r.Class == DnsClass.In && DnsMessage.SameName(r.Name, found))];
    }

    private async Task<ResolverAnswer> FromSrvAsync(DnsMessage message, List<DnsRecord> records, uint chainTtl, ServiceId service, CancellationToken cancellationToken)
    {
        var best = records.Min(r => r.Srv!.Value.Priority);
        var chosen = records.Where(r => r.Srv!.Value.Priority == best).Take(MaxTargets).ToList();
        var ttl = Seconds(Math.Min(chainTtl, chosen.Min(r => r.Ttl)));
        var targets = new List<ResolverTarget>();
        foreach (var r in chosen)
        {
            var srv = r.Srv!.Value;
            var addresses = message.Additional.Where(a => a.Address is not null && a.Class == DnsClass.In && DnsMessage.SameName(a.Name, srv.Target)).ToList();
            if (addresses.Count == 0)
            {
                foreach (var type in new[] { DnsType.A, DnsType.Aaaa })
                {
                    try
                    {
                        var m = await _client.QueryAsync(srv.Target, type, cancellationToken).ConfigureAwait(false);
                        addresses.AddRange(Chain(m, srv.Target, type, out var t).Select(x => t < x.Ttl ? x with { Ttl = t } : x));
                    }
                    catch (DnsException)
                    {
                        // This target's address is unknown for now; the others may do.
                    }
                }
            }

            foreach (var a in addresses)
            {
                if (targets.Count < MaxTargets)
                {
                    targets.Add(new ResolverTarget(LinkAddress.FromIPAddress(a.Address!, srv.Port), Math.Max((uint)srv.Weight, 1)));
                    ttl = Min(ttl, Seconds(a.Ttl));
                }
            }
        }

        if (targets.Count == 0)
        {
            throw new DnsException($"no address for the SRV targets of {RecordName(service)}");
        }

        return ResolverAnswer.Found(ServicePrefix.Exact(service), targets, Clamp(ttl));
    }

    private TimeSpan NegativeTtl(DnsMessage m)
    {
        var soa = m.Authority.FirstOrDefault(r => r.Type == DnsType.Soa && r.SoaMinimum is not null);
        return soa is null ? Options.NegativeTtl : Min(Options.NegativeTtl, Seconds(Math.Min(soa.Ttl, soa.SoaMinimum!.Value)));
    }

    private TimeSpan Clamp(TimeSpan ttl) => ttl < Options.MinTtl ? Options.MinTtl : ttl > Options.MaxTtl ? Options.MaxTtl : ttl;

    private static TimeSpan Seconds(uint seconds) => TimeSpan.FromSeconds(Math.Min(seconds, 7 * 24 * 3600));

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static async Task Observe(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (DnsException)
        {
            // Not needed: an SRV answer won.
        }
    }

    internal static string Join(string name, string zone) => $"{name.TrimEnd('.')}.{zone.Trim('.')}";
}
