using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// <c>bench/run.sh migration</c>: in two network namespaces joined by two veth pairs (two subnets), a mobile host with
/// one UDP link per interface streams to a peer (through a token-bucket bottleneck of RATE_MBPS, default 300, on the
/// mobile host's interfaces; 0 = no bottleneck) and migrates the connection back and forth between its interfaces.
/// Per migration: the gap from the trigger to the first new byte (one the sender had not sent before the trigger)
/// delivered to the receiving application; migrations that failed; and at the end the bytes lost (byte count and
/// SHA-256 of the whole stream, sender against receiver).
/// </summary>
/// <remarks>
/// Triggers: <c>explicit</c> (default) calls <see cref="ServalHost.MigrateLinkAsync"/>; <c>link-state</c> sets the
/// flow's link down with <see cref="ServalHost.SetLinkUpAsync"/> (the engine's automatic migration moves the flow) and
/// up again after the move. Both hosts live in this process, each created inside its namespace.
/// </remarks>
internal static class MigrationBenchmark
{
    private const string MobileA = "10.62.1.1";
    private const string MobileB = "10.62.2.1";
    private const string PeerAddress = "10.62.9.1";
    private const int Chunk = 64 * 1024;

    public static async Task<int> RunAsync(string[] args)
    {
        var migrations = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100;
        var trigger = args.Length > 1 ? args[1] : "explicit";
        var rateMbps = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 300;
        if (trigger is not ("explicit" or "link-state") || migrations is < 1 or > 10_000 || rateMbps is < 0 or > 100_000)
        {
            Console.Error.WriteLine("usage: migration [COUNT (1-10000)] [explicit|link-state] [RATE_MBPS (bottleneck; 0: none)]");
            return 2;
        }

        if (NetNamespace.UnsupportedReason is { } reason)
        {
            Console.Error.WriteLine($"migration: cannot run: {reason}");
            return 2;
        }

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        var ct = deadline.Token;
        await using var mobileNs = NetNamespace.Create("bmob");
        await using var peerNs = NetNamespace.Create("bpeer");
        Veth.Connect(mobileNs, "mv0", $"{MobileA}/24", peerNs, "pv0", "10.62.1.2/24");
        Veth.Connect(mobileNs, "mv1", $"{MobileB}/24", peerNs, "pv1", "10.62.2.2/24");
        peerNs.Ip("addr", "add", $"{PeerAddress}/32", "dev", "lo");
        mobileNs.Ip("rule", "add", "from", MobileA, "table", "101", "pref", "1001");
        mobileNs.Ip("route", "add", $"{PeerAddress}/32", "via", "10.62.1.2", "table", "101");
        mobileNs.Ip("rule", "add", "from", MobileB, "table", "102", "pref", "1002");
        mobileNs.Ip("route", "add", $"{PeerAddress}/32", "via", "10.62.2.2", "table", "102");

        if (rateMbps > 0)
        {
            // The bottleneck: a token bucket on the mobile host's two interfaces, with a queue of about 2 ms, so the
            // sender is always backlogged and the queue sits in the network, not in the receiving host.
            foreach (var dev in new[] { "mv0", "mv1" })
            {
                mobileNs.Ip("link", "set", "dev", dev, "txqueuelen", "1000");
                mobileNs.Exec("tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", $"{rateMbps}mbit", "burst", "32kb", "latency", "2ms");
            }
        }

        await using var peer = peerNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "peer",
            Links = [new UdpLink(IPAddress.Parse(PeerAddress))],
        }).AsTask().GetAwaiter().GetResult());
        await using var mobile = mobileNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "mobile",
            Links = [new UdpLink(IPAddress.Parse(MobileA)), new UdpLink(IPAddress.Parse(MobileB))],
        }).AsTask().GetAwaiter().GetResult());

        var service = ServiceId.FromName("bench.migration");
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = peer, ListenEndPoint = new ServiceEndPoint(service) }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = mobile, Service = service, AdvisoryAddress = peer.Links[0].LocalAddress }, ct);
        await using var accepted = await accept;

        // The stream: 64 KiB chunks taken at varying offsets of a random pool, so every position differs.
        var pool = new byte[(16 * 1024 * 1024) + Chunk];
        new Random(62).NextBytes(pool);
        var probe = new ReceiveProbe();
        var stop = 0;
        long written = 0;
        var transferStart = Stopwatch.GetTimestamp();
        var writer = Task.Run(
            async () =>
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var stream = connection.GetStream();
                for (long i = 0; Volatile.Read(ref stop) == 0; i++)
                {
                    var chunk = pool.AsMemory((int)(i * 4099 % (pool.Length - Chunk)), Chunk);
                    await stream.WriteAsync(chunk, ct);
                    hash.AppendData(chunk.Span);
                    Interlocked.Add(ref written, Chunk);
                }

                stream.CompleteWrites();
                return hash.GetHashAndReset();
            },
            ct);
        var reader = Task.Run(
            async () =>
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[256 * 1024];
                var stream = accepted.GetStream();
                int n;
                while ((n = await stream.ReadAsync(buffer, ct)) > 0)
                {
                    hash.AppendData(buffer, 0, n);
                    probe.Delivered(n);
                }

                return hash.GetHashAndReset();
            },
            ct);

        // Warm up: the window opens and the stream reaches steady state.
        await WaitAsync(() => probe.Total >= 32L * 1024 * 1024, TimeSpan.FromSeconds(30), ct);

        var gaps = new List<double>();
        var failed = 0;
        var lateSnapshots = 0;
        var failedBefore = mobile.Counters.MigrationsFailed;
        var clock = Stopwatch.StartNew();
        for (var m = 0; m < migrations; m++)
        {
            var before = (await connection.GetFlowInfoAsync(ct))!;
            var from = before.Interface - 1;
            var to = 1 - from;
            var t0 = Stopwatch.GetTimestamp();
            FlowInfo? atTrigger;
            try
            {
                // Both requests go to the engine queue back to back: the snapshot is taken right after the RSYN, while
                // the stream is frozen, so its BytesSent is the first byte that only the new path can carry.
                var started = trigger == "explicit" ? mobile.MigrateLinkAsync(from, to, ct) : SetDownAsync(mobile, from, ct);
                var snapshot = connection.GetFlowInfoAsync(ct);
                var n = await started;
                atTrigger = await snapshot;
                if (n != 1 || atTrigger is null)
                {
                    failed++;
                    Console.Error.WriteLine($"migration {m}: {n} flows started moving");
                    continue;
                }
            }
            catch (ServalException e)
            {
                failed++;
                Console.Error.WriteLine($"migration {m}: {e.Message}");
                continue;
            }

            if (atTrigger.Migration == MigrationState.None)
            {
                lateSnapshots++; // the move completed before the snapshot: the gap below is an upper bound
            }

            var firstNew = atTrigger.Stream!.Value.BytesSent - atTrigger.Stream!.Value.BytesRetransmitted; // new data only
            var hit = probe.WaitFor(firstNew, TimeSpan.FromSeconds(5));
            if (hit is not { } at)
            {
                failed++;
                Console.Error.WriteLine($"migration {m}: no new byte within 5 s");
                continue;
            }

            gaps.Add(Stopwatch.GetElapsedTime(t0, at).TotalMilliseconds);
            var moved = await WaitAsync(
                async () => (await connection.GetFlowInfoAsync(ct)) is { Migration: MigrationState.None } f && f.Interface == to + 1,
                TimeSpan.FromSeconds(5),
                ct);
            if (!moved)
            {
                failed++;
                Console.Error.WriteLine($"migration {m}: the flow did not settle on link {to}");
            }

            if (trigger == "link-state")
            {
                await mobile.SetLinkUpAsync(from, true, ct);
            }

            // Let the stream run on the new path for a moment.
            await Task.Delay(10, ct);
        }

        var elapsed = clock.Elapsed;
        Volatile.Write(ref stop, 1);
        var sent = await writer;
        var received = await reader;
        var engineFailed = mobile.Counters.MigrationsFailed - failedBefore;
        failed = (int)Math.Max(failed, engineFailed);
        var total = Interlocked.Read(ref written);
        var lost = total - probe.Total;
        if (lost == 0 && !sent.AsSpan().SequenceEqual(received))
        {
            lost = total; // same length, different content: count the whole stream as lost
        }

        gaps.Sort();
        var stats = accepted.GetFlowInfoAsync(ct).AsTask().GetAwaiter().GetResult()?.Stream;
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"trigger={trigger} bottleneck_mbps={(rateMbps == 0 ? "none" : rateMbps.ToString(CultureInfo.InvariantCulture))} migrations={migrations} measured={gaps.Count} late_snapshots={lateSnapshots} elapsed_s={elapsed.TotalSeconds:F1} bytes={total} goodput_mbps={total * 8 / Stopwatch.GetElapsedTime(transferStart).TotalSeconds / 1e6:F0}"));
        if (gaps.Count > 0)
        {
            Console.Error.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"gap_ms min={gaps[0]:F3} p50={Percentile(gaps, 0.5):F3} p90={Percentile(gaps, 0.9):F3} p99={Percentile(gaps, 0.99):F3} max={gaps[^1]:F3}; engine: started={mobile.Counters.MigrationsStarted} completed={mobile.Counters.MigrationsCompleted} failed={mobile.Counters.MigrationsFailed} rsyn_rtt_max_ms={mobile.Counters.MigrationTimeMax.TotalMilliseconds:F3}; receiver duplicates={stats?.DuplicateSegmentsReceived}"));
        }

        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"rsyn_rtt_avg_ms={mobile.Counters.MigrationTimeTotal.TotalMilliseconds / Math.Max(1, mobile.Counters.MigrationsCompleted):F3} control_retransmissions={mobile.Counters.ControlRetransmissions}"));
        if (Environment.GetEnvironmentVariable("MIGRATION_VERBOSE") == "1")
        {
            foreach (var (name, h) in new[] { ("mobile", mobile), ("peer", peer) })
            {
                Console.Error.WriteLine(name + ": " + string.Join(" ", typeof(EngineCounters).GetProperties().Select(p => $"{p.Name}={p.GetValue(h.Counters)}")));
            }
        }

        foreach (var (name, ns) in new[] { ("mobile", mobileNs), ("peer", peerNs) })
        {
            if (Environment.GetEnvironmentVariable("MIGRATION_VERBOSE") == "1")
            {
                Console.Error.WriteLine($"{name} neigh: {ns.Ip("-s", "neigh")}");
            }

            var snmp = ns.Exec("cat", "/proc/net/snmp").Split('\n').Where(l => l.StartsWith("Udp:", StringComparison.Ordinal)).ToArray();
            Console.Error.WriteLine($"{name} {string.Join(" | ", snmp)}");
        }

        var p50 = gaps.Count > 0 ? Percentile(gaps, 0.5) : double.NaN;
        var p99 = gaps.Count > 0 ? Percentile(gaps, 0.99) : double.NaN;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"migration: gap_ms_p50={p50:F2} gap_ms_p99={p99:F2} failed={failed} bytes_lost={lost}"));
        return 0;
    }

    /// <summary>Sets the link down (the engine moves its flows); posts to the engine before it first awaits.</summary>
    private static async ValueTask<int> SetDownAsync(ServalHost host, int link, CancellationToken ct)
    {
        await host.SetLinkUpAsync(link, false, ct);
        return 1;
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    private static double Percentile(List<double> sorted, double p) =>
        sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static Task<bool> WaitAsync(Func<bool> condition, TimeSpan limit, CancellationToken ct) =>
        WaitAsync(() => ValueTask.FromResult(condition()), limit, ct);

    private static async Task<bool> WaitAsync(Func<ValueTask<bool>> condition, TimeSpan limit, CancellationToken ct)
    {
        var end = Stopwatch.GetTimestamp() + (long)(limit.TotalSeconds * Stopwatch.Frequency);
        while (!await condition())
        {
            if (Stopwatch.GetTimestamp() > end)
            {
                return false;
            }

            await Task.Delay(1, ct);
        }

        return true;
    }

    /// <summary>What the receiving application has read, and when it first read past a given stream offset.</summary>
    private sealed class ReceiveProbe
    {
        private readonly object _gate = new();
        private long _total;
        private long _target = long.MaxValue;
        private long _hitAt;

        public long Total => Interlocked.Read(ref _total);

        /// <summary>Called by the reader after each read of <paramref name="n"/> bytes.</summary>
        public void Delivered(int n)
        {
            var total = Interlocked.Add(ref _total, n);
            if (total > Interlocked.Read(ref _target))
            {
                lock (_gate)
                {
                    if (_hitAt == 0 && total > _target)
                    {
                        _hitAt = Stopwatch.GetTimestamp();
                        Monitor.PulseAll(_gate);
                    }
                }
            }
        }

        /// <summary>Waits until the byte at <paramref name="offset"/> is delivered; its timestamp, or null after <paramref name="limit"/>.</summary>
        public long? WaitFor(long offset, TimeSpan limit)
        {
            lock (_gate)
            {
                _hitAt = 0;
                Interlocked.Exchange(ref _target, offset);
                if (Total > offset)
                {
                    _hitAt = Stopwatch.GetTimestamp(); // already there (only if the snapshot came late)
                }

                var end = Stopwatch.GetTimestamp() + (long)(limit.TotalSeconds * Stopwatch.Frequency);
                while (_hitAt == 0)
                {
                    var left = end - Stopwatch.GetTimestamp();
                    if (left <= 0)
                    {
                        break;
                    }

                    Monitor.Wait(_gate, TimeSpan.FromSeconds((double)left / Stopwatch.Frequency));
                }

                var hit = _hitAt;
                Interlocked.Exchange(ref _target, long.MaxValue);
                return hit == 0 ? null : hit;
            }
        }
    }
}
