using System.Net;
using Microsoft.Extensions.Logging;
using Serval.Resolution;
using Serval.Resolution.Dns;
using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval.Runtime;

/// <summary>
/// Publishes a router's registrations in DNS (docs/resolution.md, "Publishing registrations"): for each registration
/// rule of a whole serviceID (/256) an SRV record <c>_serval._udp.H1.H2.ZONE SRV 0 WEIGHT PORT HOST.host.ZONE</c> and
/// the host's A or AAAA record (<c>HOST</c>: the address in hex), added and deleted with RFC 2136 UPDATE messages.
/// The engine thread reports rule changes (<see cref="OnChange"/>); a background loop makes the zone match: it sends
/// what differs between the rules and what was published (at most 64 changes per message), and after a failure tries
/// again, backing off from 1 s to 30 s. Shorter prefixes have no DNS name and are not published.
/// </summary>
internal sealed class RegistrationPublisher : IDisposable
{
    private const int MaxChangesPerMessage = 64;
    private readonly DnsUpdateOptions _options;
    private readonly ILogger _logger;
    private readonly string _host;
    private readonly DnsClient _client;
    private readonly Lock _gate = new();
    private readonly Dictionary<(ServiceId Service, LinkAddress Host), uint> _desired = [];
    private readonly Dictionary<(ServiceId Service, LinkAddress Host), uint> _published = [];
    private readonly HashSet<LinkAddress> _publishedHosts = [];
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;
    private long _updates;
    private long _failures;
    private bool _warnedPrefix;

    public RegistrationPublisher(DnsUpdateOptions options, ILogger logger, string host)
    {
        _options = options;
        _logger = logger;
        _host = host;
        _client = new DnsClient([options.Server!], options.Timeout, 1);
        _loop = Task.Run(RunAsync);
    }

    /// <summary>UPDATE messages the server accepted.</summary>
    public long Updates => Interlocked.Read(ref _updates);

    /// <summary>UPDATE messages that failed (no answer, or an error code).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Whether the zone holds exactly the current rules.</summary>
    public bool InSync
    {
        get
        {
            lock (_gate)
            {
                return _desired.Count == _published.Count && _desired.All(d => _published.TryGetValue(d.Key, out var w) && w == d.Value);
            }
        }
    }

    /// <summary>Engine thread: a registration rule appeared, changed weight or went.</summary>
    public void OnChange(RegistrationRuleChange change)
    {
        if (change.Prefix.Length != ServiceId.Bits)
        {
            if (!_warnedPrefix)
            {
                _warnedPrefix = true;
                if (_logger.IsEnabled(LogLevel.Information))
                {
                    HostLog.PublishPrefix(_logger, _host, change.Prefix);
                }
            }

            return;
        }

        lock (_gate)
        {
            var key = (change.Prefix.Id, change.Host);
            if (change.Installed)
            {
                _desired[key] = change.Weight;
            }
            else
            {
                _desired.Remove(key);
            }
        }

        _signal.Release();
    }

    /// <summary>Sends what is still unpublished (waiting at most <paramref name="wait"/>), then stops.</summary>
    public void Stop(TimeSpan wait)
    {
        _signal.Release();
        try
        {
            SpinWait.SpinUntil(() => InSync, wait);
        }
        finally
        {
            _stopping.Cancel();
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _signal.Dispose();
    }

    private async Task RunAsync()
    {
        var backoff = TimeSpan.FromSeconds(1);
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await _signal.WaitAsync(_stopping.Token).ConfigureAwait(false);
                while (!_stopping.IsCancellationRequested && Diff() is { Count: > 0 } changes)
                {
                    if (await SendAsync(changes).ConfigureAwait(false))
                    {
                        backoff = TimeSpan.FromSeconds(1);
                        continue;
                    }

                    await Task.Delay(backoff, _stopping.Token).ConfigureAwait(false);
                    backoff = backoff * 2 > TimeSpan.FromSeconds(30) ? TimeSpan.FromSeconds(30) : backoff * 2;
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>What to send next: deletions and additions of SRV records, and of host records no SRV record needs or that one newly needs.</summary>
    private List<Change> Diff()
    {
        lock (_gate)
        {
            var changes = new List<Change>();
            foreach (var (key, weight) in _published)
            {
                if ((!_desired.TryGetValue(key, out var w) || w != weight) && changes.Count < MaxChangesPerMessage)
                {
                    changes.Add(new Change(key, weight, Add: false));
                }
            }

            foreach (var (key, weight) in _desired)
            {
                if ((!_published.TryGetValue(key, out var w) || w != weight) && changes.Count < MaxChangesPerMessage)
                {
                    changes.Add(new Change(key, weight, Add: true));
                }
            }

            return changes;
        }
    }

    private async Task<bool> SendAsync(List<Change> changes)
    {
        var zone = _options.Zone.Trim('.');
        var ttl = (uint)_options.RecordTtl.TotalSeconds;
        var records = new List<DnsChange>();
        HashSet<LinkAddress> hostsAfter;
        lock (_gate)
        {
            var after = new Dictionary<(ServiceId Service, LinkAddress Host), uint>(_published);
            foreach (var c in changes)
            {
                if (c.Add)
                {
                    after[c.Key] = c.Weight;
                }
                else if (after.TryGetValue(c.Key, out var w) && w == c.Weight)
                {
                    after.Remove(c.Key);
                }
            }

            hostsAfter = [.. after.Keys.Select(k => k.Host.WithPort(0))];
        }

        foreach (var c in changes)
        {
            var srv = DnsWriter.SrvData(0, (ushort)Math.Min(c.Weight, ushort.MaxValue), (ushort)c.Key.Host.Port, HostName(c.Key.Host, zone));
            records.Add(new DnsChange(c.Add ? DnsChangeKind.Add : DnsChangeKind.Delete, DnsServiceResolver.Join(DnsServiceResolver.SrvPrefix, DnsServiceResolver.RecordName(c.Key.Service, zone)), DnsType.Srv, ttl, srv));
        }

        List<LinkAddress> hostsAdded;
        List<LinkAddress> hostsRemoved;
        lock (_gate)
        {
            hostsAdded = [.. hostsAfter.Where(h => !_publishedHosts.Contains(h))];
            hostsRemoved = [.. _publishedHosts.Where(h => !hostsAfter.Contains(h))];
        }

        foreach (var h in hostsAdded)
        {
            var ip = h.ToIPAddress();
            records.Add(new DnsChange(DnsChangeKind.Add, HostName(h, zone), DnsWriter.AddressType(ip), ttl, DnsWriter.AddressData(ip)));
        }

        foreach (var h in hostsRemoved)
        {
            var ip = h.ToIPAddress();
            records.Add(new DnsChange(DnsChangeKind.Delete, HostName(h, zone), DnsWriter.AddressType(ip), 0, DnsWriter.AddressData(ip)));
        }

        try
        {
            var answer = await _client.ExchangeAsync(id => DnsWriter.Update(id, zone, records), new DnsQuestion(zone, DnsType.Soa), DnsOpcode.Update, _stopping.Token).ConfigureAwait(false);
            if (answer.ResponseCode != DnsResponseCode.NoError)
            {
                Interlocked.Increment(ref _failures);
                HostLog.PublishFailed(_logger, null, _host, _options.Server!.ToString(), zone, answer.ResponseCode.ToString());
                return false;
            }
        }
        catch (DnsException e)
        {
            Interlocked.Increment(ref _failures);
            HostLog.PublishFailed(_logger, e, _host, _options.Server!.ToString(), zone, e.Message);
            return false;
        }

        lock (_gate)
        {
            foreach (var c in changes)
            {
                if (c.Add)
                {
                    _published[c.Key] = c.Weight;
                }
                else if (_published.TryGetValue(c.Key, out var w) && w == c.Weight)
                {
                    _published.Remove(c.Key);
                }
            }

            _publishedHosts.UnionWith(hostsAdded);
            _publishedHosts.ExceptWith(hostsRemoved);
        }

        Interlocked.Increment(ref _updates);
        return true;
    }

    /// <summary>The name of a host's address record: its address bytes in hex, under <c>host.ZONE</c>.</summary>
    internal static string HostName(LinkAddress host, string zone)
    {
        Span<byte> bytes = stackalloc byte[16];
        var n = host.WriteAddress(bytes);
        return $"{Convert.ToHexStringLower(bytes[..n])}.host.{zone.Trim('.')}";
    }

    private readonly record struct Change((ServiceId Service, LinkAddress Host) Key, uint Weight, bool Add);
}
