using System.Net;
using Serval.Resolution.Dns;

namespace Serval.Resolution;

/// <summary>
/// Where a service router publishes its registrations (<see cref="ServalHostOptions.PublishRegistrations"/>;
/// docs/resolution.md, "Publishing registrations"): dynamic updates (RFC 2136) to an authoritative server of
/// <see cref="Zone"/>, in the record format <see cref="DnsServiceResolver"/> reads.
/// </summary>
public sealed record DnsUpdateOptions
{
    /// <summary>The primary server of the zone, which accepts UPDATE messages from this host (an address ACL: no TSIG).</summary>
    public IPEndPoint? Server { get; init; }

    /// <summary>The zone the records go to, e.g. <c>serval.example.org</c>.</summary>
    public string Zone { get; init; } = string.Empty;

    /// <summary>TTL of the published records (default 10 s: resolvers forget a replica that left within that).</summary>
    public TimeSpan RecordTtl { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait for the server's answer to one UPDATE (default 1 s; failed updates are retried, backing off to 30 s).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Server is null || Server.Port == 0)
        {
            throw new ArgumentException("DNS updates need a server with a port.", nameof(Server));
        }

        if (string.IsNullOrWhiteSpace(Zone) || !DnsWriter.IsValidName(Zone) || Zone.Trim('.').Length == 0)
        {
            throw new ArgumentException($"'{Zone}' is not a DNS zone name.", nameof(Zone));
        }

        if (RecordTtl < TimeSpan.FromSeconds(1) || RecordTtl > TimeSpan.FromDays(1) || Timeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("RecordTtl must be 1 s to 1 day and Timeout positive.", nameof(RecordTtl));
        }
    }
}
