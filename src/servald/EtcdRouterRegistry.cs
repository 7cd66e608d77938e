using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Serval.Stack.ControlPlane;

namespace Serval.Daemon;

/// <summary>Where the etcd cluster is and how to talk to it (<c>Serval:Router:Fleet</c>).</summary>
internal sealed record EtcdRegistryOptions
{
    /// <summary>Client URLs of the cluster's members (<c>http://</c> or <c>https://</c>); a failing member is left for the next.</summary>
    public required IReadOnlyList<Uri> Endpoints { get; init; }

    /// <summary>The key prefix under which the fleet keeps its state (ends with '/').</summary>
    public string Root { get; init; } = "/serval/fleet/";

    /// <summary>With https endpoints: PEM file of the CA that signed the members' certificates (null: the system's trust store).</summary>
    public string? CaFile { get; init; }

    /// <summary>With https endpoints: PEM client certificate and its key, or null.</summary>
    public string? CertFile { get; init; }

    /// <summary>The client certificate's PEM key.</summary>
    public string? KeyFile { get; init; }

    /// <summary>etcd user name (with <see cref="Password"/>), or null when authentication is off.</summary>
    public string? Username { get; init; }

    /// <summary>etcd password.</summary>
    public string? Password { get; init; }

    /// <summary>Deadline of one request (default 2 s).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Most operations per transaction (etcd's --max-txn-ops, default 128).</summary>
    public int MaxTxnOps { get; init; } = 128;
}

/// <summary>
/// The fleet registry in etcd (docs/router-fleet.md): registrations are keys under <see cref="EtcdRegistryOptions.Root"/>
/// attached to one lease per registering host, written in batched transactions; the state comes back as a linearizable
/// snapshot, then a watch from the snapshot's revision. Operations that fail are retried on the next member; while
/// etcd cannot be reached the router is degraded and forwards from its last table; when etcd returns, a new snapshot
/// brings it up to date and registrations accepted meanwhile are written.
/// </summary>
internal sealed partial class EtcdRouterRegistry : IRouterRegistry, IAsyncDisposable, IDisposable
{
    private readonly EtcdRegistryOptions _options;
    private readonly ILogger _logger;
    private readonly GrpcChannel[] _channels;
    private readonly ConcurrentQueue<Op> _ops = new();
    private readonly SemaphoreSlim _opsSignal = new(0);
    private readonly ConcurrentQueue<RegistryUpdate> _updates = new();
    private readonly ConcurrentDictionary<ulong, GroupLease> _leases = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly string _root;
    private readonly ByteString _rootBytes;
    private readonly ByteString _rangeEnd;
    private Action? _wake;
    private int _endpoint;
    private string? _token;
    private long _revision;
    private int _batchLimit = int.MaxValue;
    private volatile bool _watchOk;
    private volatile bool _writeOk = true;
    private Task? _writer;
    private Task? _watcher;
    private Task? _keepAlive;

    public EtcdRouterRegistry(EtcdRegistryOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
        _root = options.Root;
        _rootBytes = ByteString.CopyFromUtf8(_root);
        _rangeEnd = PrefixEnd(_rootBytes);
        _channels = [.. options.Endpoints.Select(CreateChannel)];
        Status.SetDegraded(true);
    }

    public RegistryStatus Status { get; } = new();

    public long UnixTimeMilliseconds => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public void Attach(Action wake)
    {
        _wake = wake;
        _writer ??= Task.Run(() => WriterLoop(_stop.Token));
        _watcher ??= Task.Run(() => WatchLoop(_stop.Token));
        _keepAlive ??= Task.Run(() => KeepAliveLoop(_stop.Token));
    }

    public void Put(string key, string value, ulong group, TimeSpan ttl) => Enqueue(new Op(OpKind.Put, key, value, group, ttl));

    public void Delete(string key, ulong group) => Enqueue(new Op(OpKind.Delete, key, null, group, default));

    public void PutPermanent(string key, string value) => Enqueue(new Op(OpKind.PutPermanent, key, value, 0, default));

    public void DeletePermanent(string key) => Enqueue(new Op(OpKind.DeletePermanent, key, null, 0, default));

    public void KeepAlive(ulong group)
    {
        if (_leases.TryGetValue(group, out var lease))
        {
            lease.Refreshed = true;
        }
    }

    public void Release(ulong group) => Enqueue(new Op(OpKind.Release, "", null, group, default));

    public bool TryTake([NotNullWhen(true)] out RegistryUpdate? update) => _updates.TryDequeue(out update);

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var t in new[] { _writer, _watcher, _keepAlive })
        {
            if (t is not null)
            {
                try
                {
                    await t.ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }
        }

        foreach (var c in _channels)
        {
            c.Dispose();
        }

        _stop.Dispose();
        _opsSignal.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private void Enqueue(Op op)
    {
        _ops.Enqueue(op);
        _opsSignal.Release();
    }

    // ------------------------------------------------------------------------------------------------------------
    // Connection

    private GrpcChannel CreateChannel(Uri endpoint)
    {
        var handler = new SocketsHttpHandler
        {
            // A member that stops answering is noticed within seconds, not when TCP gives up. etcd refuses pings more
            // often than its --grpc-keepalive-min-time (default 5 s) with GOAWAY ENHANCE_YOUR_CALM: stay above it.
            KeepAlivePingDelay = TimeSpan.FromSeconds(6),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(3),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            ConnectTimeout = _options.RequestTimeout,
            EnableMultipleHttp2Connections = true,
        };
        if (endpoint.Scheme == Uri.UriSchemeHttps)
        {
            var ssl = new SslClientAuthenticationOptions();
            if (_options.CaFile is { } caFile)
            {
                var ca = X509CertificateLoader.LoadCertificateFromFile(caFile);
                ssl.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    if (certificate is null)
                    {
                        return false;
                    }

                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.Add(ca);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    return (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None
                        && chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
                };
            }

            if (_options.CertFile is { } certFile)
            {
                ssl.ClientCertificates = [X509Certificate2.CreateFromPemFile(certFile, _options.KeyFile)];
            }

            handler.SslOptions = ssl;
        }

        return GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
    }

    private CallInvoker Invoker => _channels[(int)((uint)Volatile.Read(ref _endpoint) % (uint)_channels.Length)].CreateCallInvoker();

    /// <summary>A call on the current member failed for a reason another member may not have: use the next one.</summary>
    private void NextEndpoint(int seen) => Interlocked.CompareExchange(ref _endpoint, seen + 1, seen);

    private async Task<Metadata?> HeadersAsync(CancellationToken ct)
    {
        if (_options.Username is null)
        {
            return null;
        }

        var token = _token;
        if (token is null)
        {
            var auth = new Auth.AuthClient(Invoker);
            var response = await auth.AuthenticateAsync(
                new AuthenticateRequest { Name = _options.Username, Password = _options.Password ?? "" },
                deadline: DateTime.UtcNow + _options.RequestTimeout,
                cancellationToken: ct).ConfigureAwait(false);
            token = _token = response.Token;
        }

        return new Metadata { { "token", token } };
    }

    private void OnFailure(string what, Exception e, int endpoint)
    {
        var message = e is RpcException r ? $"{what}: {r.StatusCode} {r.Status.Detail}" : $"{what}: {e.Message}";
        Status.CountError(message);
        if (e is RpcException { StatusCode: StatusCode.Unauthenticated })
        {
            _token = null;
        }
        else
        {
            NextEndpoint(endpoint);
        }

        RegistryError(_logger, message);
    }

    private void UpdateDegraded()
    {
        var degraded = !(_watchOk && _writeOk);
        if (degraded != Status.Degraded)
        {
            Status.SetDegraded(degraded);
            if (degraded)
            {
                RegistryDegraded(_logger, _root);
            }
            else
            {
                RegistryHealthy(_logger, _root);
            }
        }
    }

    private static async Task Backoff(int failures, CancellationToken ct) =>
        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 100 << Math.Min(failures, 5))), ct).ConfigureAwait(false);

    // ------------------------------------------------------------------------------------------------------------
    // Writes: every pending operation, coalesced per key, in transactions of up to MaxTxnOps operations

    private async Task WriterLoop(CancellationToken ct)
    {
        var pending = new Dictionary<string, Op>(StringComparer.Ordinal);
        var releases = new HashSet<ulong>();
        var failures = 0;
        while (!ct.IsCancellationRequested)
        {
            if (pending.Count == 0 && releases.Count == 0)
            {
                await _opsSignal.WaitAsync(ct).ConfigureAwait(false);
            }

            while (_ops.TryDequeue(out var op))
            {
                if (op.Kind == OpKind.Release)
                {
                    releases.Add(op.Group);
                    continue;
                }

                if (op.Kind == OpKind.Put)
                {
                    releases.Remove(op.Group);
                }

                pending[op.Key] = op;
            }

            while (_opsSignal.CurrentCount > 0)
            {
                await _opsSignal.WaitAsync(ct).ConfigureAwait(false);
            }

            var endpoint = Volatile.Read(ref _endpoint);
            try
            {
                await FlushAsync(pending, ct).ConfigureAwait(false);
                await ReleaseAsync(releases, ct).ConfigureAwait(false);
                failures = 0;
                if (!_writeOk)
                {
                    _writeOk = true;
                    UpdateDegraded();
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is RpcException or HttpRequestException or IOException or InvalidOperationException)
            {
                OnFailure("write", e, endpoint);
                if (e is RpcException { StatusCode: StatusCode.NotFound } || (e is RpcException r && r.Status.Detail.Contains("lease not found", StringComparison.Ordinal)))
                {
                    // A lease ran out (etcd was unreachable longer than the TTL): grant new ones and write again.
                    _leases.Clear();
                }
                else
                {
                    _writeOk = false;
                    UpdateDegraded();
                    await Backoff(++failures, ct).ConfigureAwait(false);
                }
            }
        }
    }

    private async Task FlushAsync(Dictionary<string, Op> pending, CancellationToken ct)
    {
        while (pending.Count > 0)
        {
            // etcd counts the operations of nested transactions too: a conditional delete costs three (the nested
            // transaction, its compare and its delete). _batchLimit shrinks when etcd refuses a batch as too large.
            var batch = new List<Op>();
            var cost = 0;
            foreach (var op in pending.Values)
            {
                var c = op.Kind == OpKind.Delete ? 3 : 1;
                if (batch.Count > 0 && cost + c > Math.Min(_options.MaxTxnOps, _batchLimit))
                {
                    break;
                }

                batch.Add(op);
                cost += c;
            }

            // Leases first: one per registering host, granted concurrently.
            var grants = batch.Where(o => o.Kind == OpKind.Put && !_leases.ContainsKey(o.Group)).GroupBy(o => o.Group)
                .Select(g => GrantAsync(g.Key, g.Max(o => o.Ttl), ct)).ToList();
            await Task.WhenAll(grants).ConfigureAwait(false);

            var txn = new TxnRequest();
            foreach (var op in batch)
            {
                var key = ByteString.CopyFromUtf8(_root + op.Key);
                switch (op.Kind)
                {
                    case OpKind.Put:
                        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFromUtf8(op.Value), Lease = _leases[op.Group].Id } });
                        break;
                    case OpKind.PutPermanent:
                        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFromUtf8(op.Value) } });
                        break;
                    case OpKind.DeletePermanent:
                        txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } });
                        break;
                    case OpKind.Delete when _leases.TryGetValue(op.Group, out var lease):
                        // Only while still ours: another router may have taken the registration over (the host moved).
                        var inner = new TxnRequest();
                        inner.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Lease, Result = Compare.Types.CompareResult.Equal, Lease = lease.Id });
                        inner.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } });
                        txn.Success.Add(new RequestOp { RequestTxn = inner });
                        break;
                }
            }

            if (txn.Success.Count > 0)
            {
                var kv = new KV.KVClient(Invoker);
                try
                {
                    await kv.TxnAsync(txn, await HeadersAsync(ct).ConfigureAwait(false), DateTime.UtcNow + _options.RequestTimeout, ct).ConfigureAwait(false);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.NotFound || e.Status.Detail.Contains("lease not found", StringComparison.Ordinal))
                {
                    // A lease of this batch ran out before the write (etcd was slow or unreachable longer than the
                    // TTL): new leases for this batch's hosts, then the same batch again.
                    Status.CountError($"write: {e.StatusCode} {e.Status.Detail}");
                    foreach (var group in batch.Select(o => o.Group).Distinct())
                    {
                        _leases.TryRemove(group, out _);
                    }

                    continue;
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.InvalidArgument)
                {
                    // Refused as such (too many operations, a request too large): smaller batches; a single operation
                    // etcd refuses is dropped (counted), never retried forever.
                    Status.CountError($"write: {e.StatusCode} {e.Status.Detail}");
                    if (batch.Count > 1)
                    {
                        _batchLimit = Math.Max(1, batch.Count / 2);
                        continue;
                    }

                    pending.Remove(batch[0].Key);
                    continue;
                }

                Status.CountWrite(txn.Success.Count);
            }

            foreach (var op in batch)
            {
                // Remove only what was written: a newer operation on the same key queued meanwhile stays.
                if (pending.TryGetValue(op.Key, out var current) && ReferenceEquals(current, op))
                {
                    pending.Remove(op.Key);
                }
            }
        }
    }

    private async Task GrantAsync(ulong group, TimeSpan ttl, CancellationToken ct)
    {
        var seconds = Math.Max(1L, (long)Math.Ceiling(ttl.TotalSeconds));
        var lease = new Lease.LeaseClient(Invoker);
        var response = await lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = seconds }, await HeadersAsync(ct).ConfigureAwait(false), DateTime.UtcNow + _options.RequestTimeout, ct).ConfigureAwait(false);
        if (!string.IsNullOrEmpty(response.Error))
        {
            throw new InvalidOperationException("lease grant: " + response.Error);
        }

        _leases[group] = new GroupLease(response.ID, TimeSpan.FromSeconds(response.TTL));
    }

    private async Task ReleaseAsync(HashSet<ulong> releases, CancellationToken ct)
    {
        foreach (var group in releases.ToList())
        {
            if (_leases.TryRemove(group, out var lease))
            {
                var client = new Lease.LeaseClient(Invoker);
                try
                {
                    await client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease.Id }, await HeadersAsync(ct).ConfigureAwait(false), DateTime.UtcNow + _options.RequestTimeout, ct).ConfigureAwait(false);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
                {
                    // Already gone with its TTL.
                }
            }

            releases.Remove(group);
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Lease keep-alive: every lease whose host refreshed since the last one, a third of the TTL after it

    private async Task KeepAliveLoop(CancellationToken ct)
    {
        var failures = 0;
        while (!ct.IsCancellationRequested)
        {
            var endpoint = Volatile.Read(ref _endpoint);
            try
            {
                var client = new Lease.LeaseClient(Invoker);
                using var call = client.LeaseKeepAlive(await HeadersAsync(ct).ConfigureAwait(false), cancellationToken: ct);
                var reader = Task.Run(
                    async () =>
                    {
                        while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
                        {
                            var r = call.ResponseStream.Current;
                            if (r.TTL <= 0)
                            {
                                // Expired at etcd: forget it (the next write grants a new one).
                                foreach (var (group, lease) in _leases)
                                {
                                    if (lease.Id == r.ID)
                                    {
                                        _leases.TryRemove(group, out _);
                                    }
                                }
                            }
                        }
                    },
                    ct);
                failures = 0;
                while (!ct.IsCancellationRequested && !reader.IsCompleted)
                {
                    var now = DateTime.UtcNow;
                    foreach (var lease in _leases.Values)
                    {
                        if (lease.Refreshed && now - lease.LastKeepAlive >= lease.Ttl / 3)
                        {
                            lease.Refreshed = false;
                            lease.LastKeepAlive = now;
                            await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = lease.Id }, ct).ConfigureAwait(false);
                        }
                    }

                    await Task.WhenAny(reader, Task.Delay(200, ct)).ConfigureAwait(false);
                }

                await reader.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is RpcException or HttpRequestException or IOException or InvalidOperationException)
            {
                OnFailure("keep-alive", e, endpoint);
                await Backoff(++failures, ct).ConfigureAwait(false);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Reads: a linearizable snapshot, then a watch from its revision; after any failure, a new snapshot

    private async Task WatchLoop(CancellationToken ct)
    {
        var failures = 0;
        while (!ct.IsCancellationRequested)
        {
            var endpoint = Volatile.Read(ref _endpoint);
            try
            {
                var revision = await SnapshotAsync(ct).ConfigureAwait(false);
                failures = 0;
                await WatchAsync(revision, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is RpcException or HttpRequestException or IOException or InvalidOperationException)
            {
                _watchOk = false;
                UpdateDegraded();
                OnFailure("watch", e, endpoint);
                await Backoff(++failures, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task<long> SnapshotAsync(CancellationToken ct)
    {
        var kv = new KV.KVClient(Invoker);
        var response = await kv.RangeAsync(
            new RangeRequest { Key = _rootBytes, RangeEnd = _rangeEnd },
            await HeadersAsync(ct).ConfigureAwait(false),
            DateTime.UtcNow + _options.RequestTimeout,
            ct).ConfigureAwait(false);
        var revision = response.Header.Revision;
        var entries = response.Kvs.Select(k => new RegistryEntry(Relative(k.Key), k.Value.ToStringUtf8(), k.ModRevision)).ToList();
        Status.CountSnapshot();
        Publish(new RegistryUpdate { Revision = revision, Snapshot = entries });
        return revision;
    }

    private async Task WatchAsync(long revision, CancellationToken ct)
    {
        var client = new Watch.WatchClient(Invoker);
        using var call = client.Watch(await HeadersAsync(ct).ConfigureAwait(false), cancellationToken: ct);
        await call.RequestStream.WriteAsync(
            new WatchRequest
            {
                CreateRequest = new WatchCreateRequest { Key = _rootBytes, RangeEnd = _rangeEnd, StartRevision = revision + 1, ProgressNotify = true },
            },
            ct).ConfigureAwait(false);
        while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
        {
            var r = call.ResponseStream.Current;
            if (r.Created)
            {
                _watchOk = true;
                UpdateDegraded();
            }

            if (r.Canceled)
            {
                // Compacted past our revision (or refused): take a new snapshot.
                throw new InvalidOperationException(r.CompactRevision > 0
                    ? $"watch from revision {revision + 1} compacted (now at {r.CompactRevision}); taking a new snapshot"
                    : "watch canceled: " + r.CancelReason);
            }

            if (r.Events.Count == 0)
            {
                if (r.Header is { } h && h.Revision > 0)
                {
                    Publish(new RegistryUpdate { Revision = h.Revision });
                }

                continue;
            }

            var nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var events = new List<RegistryWatchEvent>(r.Events.Count);
            var max = 0L;
            foreach (var e in r.Events)
            {
                var key = Relative(e.Kv.Key);
                var rev = e.Kv.ModRevision;
                if (e.Type == Mvccpb.Event.Types.EventType.Delete)
                {
                    events.Add(new RegistryWatchEvent(key, null, rev));
                }
                else
                {
                    var value = e.Kv.Value.ToStringUtf8();
                    events.Add(new RegistryWatchEvent(key, value, rev));
                    if (RegistryCodec.TryDecode(key, value, out var record, out _) && record is not null)
                    {
                        Status.RecordWatchLag(TimeSpan.FromMilliseconds(Math.Max(0, nowMs - record.WrittenAtUnixMilliseconds)));
                    }
                }

                max = Math.Max(max, rev);
            }

            Status.CountEvents(events.Count);
            revision = Math.Max(revision, max);
            Publish(new RegistryUpdate { Revision = Math.Max(max, r.Header?.Revision ?? 0), Events = events });
        }

        throw new InvalidOperationException("watch stream ended");
    }

    private void Publish(RegistryUpdate update)
    {
        Volatile.Write(ref _revision, Math.Max(Volatile.Read(ref _revision), update.Revision));
        Status.SetRevision(Volatile.Read(ref _revision));
        _updates.Enqueue(update);
        _wake?.Invoke();
    }

    private string Relative(ByteString key)
    {
        var text = key.ToStringUtf8();
        return text.StartsWith(_root, StringComparison.Ordinal) ? text[_root.Length..] : text;
    }

    /// <summary>The end of the range of every key starting with <paramref name="prefix"/> (etcd's prefix convention).</summary>
    private static ByteString PrefixEnd(ByteString prefix)
    {
        var bytes = prefix.ToByteArray();
        for (var i = bytes.Length - 1; i >= 0; i--)
        {
            if (bytes[i] < 0xff)
            {
                bytes[i]++;
                return ByteString.CopyFrom(bytes, 0, i + 1);
            }
        }

        return ByteString.CopyFrom(0);
    }

    [LoggerMessage(EventId = 40, Level = LogLevel.Warning, Message = "Router registry (etcd): {Message}")]
    private static partial void RegistryError(ILogger logger, string message);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning, Message = "Router registry {Root} unreachable: degraded, forwarding from the last table")]
    private static partial void RegistryDegraded(ILogger logger, string root);

    [LoggerMessage(EventId = 42, Level = LogLevel.Information, Message = "Router registry {Root} in step")]
    private static partial void RegistryHealthy(ILogger logger, string root);

    private enum OpKind
    {
        Put,
        Delete,
        PutPermanent,
        DeletePermanent,
        Release,
    }

    private sealed record Op(OpKind Kind, string Key, string? Value, ulong Group, TimeSpan Ttl);

    private sealed class GroupLease(long id, TimeSpan ttl)
    {
        public long Id { get; } = id;

        public TimeSpan Ttl { get; } = ttl;

        private int _refreshed;

        public bool Refreshed
        {
            get => Volatile.Read(ref _refreshed) != 0;
            set => Volatile.Write(ref _refreshed, value ? 1 : 0);
        }

        public DateTime LastKeepAlive { get; set; } = DateTime.UtcNow;
    }
}
