using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
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
/// Triggers: <c>explicit</c> (default) calls <see cref="ServalHostAdministration.MigrateLinkAsync"/>; <c>link-state</c> sets the
/// flow's link down with <see cref="ServalHostAdministration.SetLinkUpAsync"/> (the engine's automatic migration moves the flow) and
/// up again after the move; <c>renumber</c> uses another topology (<see cref="RunRenumberAsync"/>): one interface whose
/// only address is replaced by one in the other subnet. Both hosts live in this process, each created inside its
/// namespace.
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
        if (trigger is not ("explicit" or "link-state" or "renumber" or "both") || migrations is < 1 or > 10_000 || rateMbps is < 0 or > 100_000)
        {
            Console.Error.WriteLine("usage: migration [COUNT (1-10000)] [explicit|link-state|renumber|both] [RATE_MBPS (bottleneck; 0: none)]");
            return 2;
        }

        if (NetNamespace.UnsupportedReason is { } reason)
        {
            Console.Error.WriteLine($"migration: cannot run: {reason}");
            return 2;
        }

        if (trigger == "renumber")
        {
            return await RunRenumberAsync(migrations, rateMbps);
        }

        if (trigger == "both")
        {
            return await RunBothAsync(migrations, rateMbps);
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

        var probe = new ReceiveProbe();
        var transferStart = Stopwatch.GetTimestamp();
        var stream = BenchStream.Start(connection, accepted, probe, 256 * 1024, ct);

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
                var started = trigger == "explicit" ? mobile.Admin.MigrateLinkAsync(from, to, ct) : SetDownAsync(mobile, from, ct);
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
                await mobile.Admin.SetLinkUpAsync(from, true, ct);
            }

            // Let the stream run on the new path for a moment.
            await Task.Delay(10, ct);
        }

        var elapsed = clock.Elapsed;
        var (total, lost) = await stream.FinishAsync(probe);
        var engineFailed = mobile.Counters.MigrationsFailed - failedBefore;
        failed = (int)Math.Max(failed, engineFailed);

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

    /// <summary>
    /// <c>MIGRATION_TRIGGER=renumber</c>: the mobile host has one interface (<c>mv0</c>) and no explicit link, only a
    /// link policy (<see cref="ServalHostOptions.LinkPolicies"/>); the peer's end of the veth carries both subnets.
    /// Each migration replaces the mobile host's only address by one in the other subnet, with the new default route,
    /// in one <c>ip -batch</c> (10.62.1.1 ↔ 10.62.2.1): the interface monitor retires the old link and creates one for
    /// the new address, and the engine moves the flow to it. The gap is the longest pause in delivery to the receiving
    /// application from the trigger until the flow runs on the new address again. One renumbering before the measured
    /// ones warms up (the process's first link creation and retirement run cold code) and is not measured.
    /// </summary>
    private static async Task<int> RunRenumberAsync(int migrations, int rateMbps)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        var ct = deadline.Token;
        await using var mobileNs = NetNamespace.Create("bmob");
        await using var peerNs = NetNamespace.Create("bpeer");
        Veth.Connect(mobileNs, "mv0", $"{MobileA}/24", peerNs, "pv0", "10.62.1.2/24");
        peerNs.Ip("addr", "add", "10.62.2.2/24", "dev", "pv0");
        peerNs.Ip("addr", "add", $"{PeerAddress}/32", "dev", "lo");
        mobileNs.Ip("route", "add", "default", "via", "10.62.1.2");
        if (rateMbps > 0)
        {
            mobileNs.Ip("link", "set", "dev", "mv0", "txqueuelen", "1000");
            mobileNs.Exec("tc", "qdisc", "replace", "dev", "mv0", "root", "tbf", "rate", $"{rateMbps}mbit", "burst", "32kb", "latency", "2ms");
        }

        await using var peer = peerNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "peer",
            Links = [new UdpLink(IPAddress.Parse(PeerAddress))],
        }).AsTask().GetAwaiter().GetResult());
        // MIGRATION_VERBOSE=1: the mobile host logs (links created and retired, flows moving) to stderr.
        using var logs = Environment.GetEnvironmentVariable("MIGRATION_VERBOSE") == "1"
            ? LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.ffffff "; }).AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace))
            : null;
        await using var mobile = mobileNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "mobile",
            LinkPolicies = [new LinkPolicy { IPv6 = false }],
            LoggerFactory = logs ?? NullLoggerFactory.Instance,
        }).AsTask().GetAwaiter().GetResult());

        var service = ServiceId.FromName("bench.migration");
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = peer, ListenEndPoint = new ServiceEndPoint(service) }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = mobile, Service = service, AdvisoryAddress = peer.Links[0].LocalAddress }, ct);
        await using var accepted = await accept;
        var probe = new ReceiveProbe();
        // 16 KiB reads: at 300 Mbit/s one every ~0.4 ms, so a pause is measured to within about that.
        var stream = BenchStream.Start(connection, accepted, probe, 16 * 1024, ct);
        await WaitAsync(() => probe.Total >= 32L * 1024 * 1024, TimeSpan.FromSeconds(30), ct);

        var batch = Path.GetTempFileName();
        var clock = Stopwatch.StartNew();
        List<double> gaps;
        int failed;
        try
        {
            var (from, to, gateway) = (MobileA, MobileB, "10.62.2.2");
            (gaps, failed) = await MeasureMovesAsync(
                migrations,
                probe,
                async m =>
                {
                    await File.WriteAllLinesAsync(batch, [$"addr del {from}/24 dev mv0", $"addr add {to}/24 dev mv0", $"route replace default via {gateway}"], ct);
                    var renumbered = LinkAddress.Parse($"{to}:{ServalInfo.DefaultUdpPort}");
                    var rsynBefore = mobile.Counters.MigrationTimeTotal;
                    var move = new Move(
                        $"renumbering {m} ({from} -> {to})",
                        () => mobileNs.Ip("-batch", batch),
                        async () => (await connection.GetFlowInfoAsync(ct)) is { Migration: MigrationState.None } f && f.LocalAddress == renumbered,
                        () => ValueTask.FromResult("the flow did not settle on the new address"),
                        (t0, t1, _) => string.Create(CultureInfo.InvariantCulture, $"ip_batch_ms={Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds:F1} rsyn_ms={(mobile.Counters.MigrationTimeTotal - rsynBefore).TotalMilliseconds:F1}"));
                    (from, to, gateway) = (to, from, gateway == "10.62.2.2" ? "10.62.1.2" : "10.62.2.2");
                    return move;
                },
                ct);
        }
        finally
        {
            File.Delete(batch);
        }

        var elapsed = clock.Elapsed;
        var (total0, lost) = await stream.FinishAsync(probe);
        var engineFailed = mobile.Counters.MigrationsFailed + mobile.Counters.StrandedTimeouts;
        failed = (int)Math.Max(failed, engineFailed);
        gaps.Sort();
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"trigger=renumber bottleneck_mbps={(rateMbps == 0 ? "none" : rateMbps.ToString(CultureInfo.InvariantCulture))} migrations={migrations} measured={gaps.Count} elapsed_s={elapsed.TotalSeconds:F1} bytes={total0} links={mobile.Links.Count}"));
        if (gaps.Count > 0)
        {
            Console.Error.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"gap_ms min={gaps[0]:F3} p50={Percentile(gaps, 0.5):F3} p90={Percentile(gaps, 0.9):F3} p99={Percentile(gaps, 0.99):F3} max={gaps[^1]:F3}; engine: stranded={mobile.Counters.FlowsStranded} started={mobile.Counters.MigrationsStarted} completed={mobile.Counters.MigrationsCompleted} failed={mobile.Counters.MigrationsFailed} network_down={mobile.Counters.StrandedTimeouts} rsyn_rtt_max_ms={mobile.Counters.MigrationTimeMax.TotalMilliseconds:F3}"));
        }

        var p50 = gaps.Count > 0 ? Percentile(gaps, 0.5) : double.NaN;
        var p99 = gaps.Count > 0 ? Percentile(gaps, 0.99) : double.NaN;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"migration: gap_ms_p50={p50:F2} gap_ms_p99={p99:F2} failed={failed} bytes_lost={lost}"));
        return 0;
    }

    /// <summary>
    /// <c>MIGRATION_TRIGGER=both</c>: both ends move at once (docs/engine.md, "Both ends move"). Three namespaces: the
    /// client (<c>c0</c>) and the server (<c>s0</c>) each have one veth to a router namespace whose ends carry the old
    /// and the new subnet of each side and which forwards IPv4; a service router runs there (10.66.9.1, on its loopback).
    /// The server registers its service with the router, the client connects by service name through it; both have a
    /// link policy instead of explicit links. Each migration deletes both ends' addresses (so that neither end's RSYN
    /// can reach the other's last address), then gives each one in its other subnet with the new default route
    /// (client 10.66.1.1 ↔ 10.66.3.1, server 10.66.2.1 ↔ 10.66.4.1), all six changes sent by rtnetlink from this
    /// process (<see cref="NetlinkAddresses"/>, well under a millisecond together, where starting six <c>ip</c>
    /// processes on a busy machine takes tens): only the RSYN the client relays through the router, to the server's
    /// registration from its new address, reconnects them. The gap is the longest pause in
    /// delivery to the receiving application (the server) from the trigger until the flow runs between the new addresses
    /// again and another MiB has arrived. One move before the measured ones warms up and is not measured.
    /// </summary>
    private static async Task<int> RunBothAsync(int migrations, int rateMbps)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        var ct = deadline.Token;
        await using var clientNs = NetNamespace.Create("bcli");
        await using var routerNs = NetNamespace.Create("brtr");
        await using var serverNs = NetNamespace.Create("bsrv");
        routerNs.Sysctl("net.ipv4.ip_forward", "1");
        Veth.Connect(clientNs, "c0", "10.66.1.1/24", routerNs, "r1", "10.66.1.254/24");
        Veth.Connect(serverNs, "s0", "10.66.2.1/24", routerNs, "r2", "10.66.2.254/24");
        routerNs.Ip("addr", "add", "10.66.3.254/24", "dev", "r1");
        routerNs.Ip("addr", "add", "10.66.4.254/24", "dev", "r2");
        routerNs.Ip("addr", "add", "10.66.9.1/32", "dev", "lo");
        clientNs.Ip("route", "add", "default", "via", "10.66.1.254");
        serverNs.Ip("route", "add", "default", "via", "10.66.2.254");
        if (rateMbps > 0)
        {
            clientNs.Ip("link", "set", "dev", "c0", "txqueuelen", "1000");
            clientNs.Exec("tc", "qdisc", "replace", "dev", "c0", "root", "tbf", "rate", $"{rateMbps}mbit", "burst", "32kb", "latency", "2ms");
        }

        var routerAddress = LinkAddress.Parse($"10.66.9.1:{ServalInfo.DefaultUdpPort}");
        await using var router = routerNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "router",
            Links = [new UdpLink(IPAddress.Parse("10.66.9.1"))],
            Engine = EngineOptions.Default with { Mode = EngineMode.ServiceRouter },
            RouterControl = new Stack.ControlPlane.RouterControllerOptions(),
        }).AsTask().GetAwaiter().GetResult());
        await using var server = serverNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "server",
            LinkPolicies = [new LinkPolicy { IPv6 = false }],
            RegisterWithRouter = routerAddress,
        }).AsTask().GetAwaiter().GetResult());
        await using var client = clientNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "client",
            LinkPolicies = [new LinkPolicy { IPv6 = false }],
            DefaultRouter = routerAddress,
        }).AsTask().GetAwaiter().GetResult());

        var service = ServiceId.FromName("bench.migration.both");
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(service) }, ct);
        var registered = await WaitAsync(
            () => router.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(service) && r.Target.Type == Stack.Services.ServiceTargetType.Forward),
            TimeSpan.FromSeconds(10),
            ct);
        if (!registered)
        {
            Console.Error.WriteLine("migration: the server's registration did not reach the router within 10 s");
            return 1;
        }

        var accept = listener.AcceptConnectionAsync(ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = service }, ct);
        await using var accepted = await accept;
        var probe = new ReceiveProbe();
        var stream = BenchStream.Start(connection, accepted, probe, 16 * 1024, ct);
        await WaitAsync(() => probe.Total >= 32L * 1024 * 1024, TimeSpan.FromSeconds(30), ct);

        using var clientRoutes = NetlinkAddresses.Open(clientNs, "c0");
        using var serverRoutes = NetlinkAddresses.Open(serverNs, "s0");
        var clock = Stopwatch.StartNew();
        var (clientFrom, clientTo, clientGateway) = ("10.66.1.1", "10.66.3.1", "10.66.3.254");
        var (serverFrom, serverTo, serverGateway) = ("10.66.2.1", "10.66.4.1", "10.66.4.254");
        var (gaps, failed) = await MeasureMovesAsync(
            migrations,
            probe,
            m =>
            {
                var clientNew = LinkAddress.Parse($"{clientTo}:{ServalInfo.DefaultUdpPort}");
                var serverNew = LinkAddress.Parse($"{serverTo}:{ServalInfo.DefaultUdpPort}");
                var (resentBefore, retransmitsBefore, serverRetransmitsBefore) = (router.Counters.RelaysResent, client.Counters.ControlRetransmissions, server.Counters.ControlRetransmissions);
                var (cFrom, cTo, cGateway, sFrom, sTo, sGateway) = (clientFrom, clientTo, clientGateway, serverFrom, serverTo, serverGateway);
                var move = new Move(
                    $"both moving {m} (client {cFrom} -> {cTo}, server {sFrom} -> {sTo})",
                    () =>
                    {
                        clientRoutes.DeleteAddress(IPAddress.Parse(cFrom), 24);
                        serverRoutes.DeleteAddress(IPAddress.Parse(sFrom), 24);
                        clientRoutes.AddAddress(IPAddress.Parse(cTo), 24);
                        clientRoutes.ReplaceDefaultRoute(IPAddress.Parse(cGateway));
                        serverRoutes.AddAddress(IPAddress.Parse(sTo), 24);
                        serverRoutes.ReplaceDefaultRoute(IPAddress.Parse(sGateway));
                    },
                    async () => (await connection.GetFlowInfoAsync(ct)) is { Migration: MigrationState.None } f && f.LocalAddress == clientNew && f.PeerAddress == serverNew,
                    async () =>
                    {
                        var f = await connection.GetFlowInfoAsync(ct);
                        return $"the flow did not settle on the new addresses ({f?.LocalAddress} -> {f?.PeerAddress}, {f?.Migration})";
                    },
                    (t0, t1, t2) => string.Create(
                        CultureInfo.InvariantCulture,
                        $"addresses_changed_ms={Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds:F2} settled_seen_ms={Stopwatch.GetElapsedTime(t0, t2).TotalMilliseconds:F1} relays_resent={router.Counters.RelaysResent - resentBefore} control_retransmissions client={client.Counters.ControlRetransmissions - retransmitsBefore} server={server.Counters.ControlRetransmissions - serverRetransmitsBefore} send_errors client={client.Links.Sum(l => l.Counters.SendErrors)} server={server.Links.Sum(l => l.Counters.SendErrors)}"));
                (clientFrom, clientTo, clientGateway) = (clientTo, clientFrom, clientGateway == "10.66.3.254" ? "10.66.1.254" : "10.66.3.254");
                (serverFrom, serverTo, serverGateway) = (serverTo, serverFrom, serverGateway == "10.66.4.254" ? "10.66.2.254" : "10.66.4.254");
                return Task.FromResult(move);
            },
            ct);

        var elapsed = clock.Elapsed;
        var (total0, lost) = await stream.FinishAsync(probe);
        var engineFailed = client.Counters.MigrationsFailed + client.Counters.StrandedTimeouts + server.Counters.MigrationsFailed + server.Counters.StrandedTimeouts;
        failed = (int)Math.Max(failed, engineFailed);
        gaps.Sort();
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"trigger=both bottleneck_mbps={(rateMbps == 0 ? "none" : rateMbps.ToString(CultureInfo.InvariantCulture))} migrations={migrations} measured={gaps.Count} elapsed_s={elapsed.TotalSeconds:F1} bytes={total0}"));
        if (gaps.Count > 0)
        {
            Console.Error.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"gap_ms min={gaps[0]:F3} p50={Percentile(gaps, 0.5):F3} p90={Percentile(gaps, 0.9):F3} p99={Percentile(gaps, 0.99):F3} max={gaps[^1]:F3}; client: relayed={client.Counters.RsynsRelayed} started={client.Counters.MigrationsStarted} completed={client.Counters.MigrationsCompleted} failed={client.Counters.MigrationsFailed} control_retransmissions={client.Counters.ControlRetransmissions}; server: started={server.Counters.MigrationsStarted} completed={server.Counters.MigrationsCompleted} failed={server.Counters.MigrationsFailed}; router: forwarded={router.Counters.Forwarded} relays_resent={router.Counters.RelaysResent}"));
        }

        var p50 = gaps.Count > 0 ? Percentile(gaps, 0.5) : double.NaN;
        var p99 = gaps.Count > 0 ? Percentile(gaps, 0.99) : double.NaN;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"migration: gap_ms_p50={p50:F2} gap_ms_p99={p99:F2} failed={failed} bytes_lost={lost}"));
        return 0;
    }

    /// <summary>
    /// One move of the <c>renumber</c> and <c>both</c> triggers: its name (for failure lines), the address change, when
    /// the flow has settled after it, what to say when it did not, and the verbose line's details (from the trigger's,
    /// the change's end and the settle's timestamps).
    /// </summary>
    private sealed record Move(string Name, Action Apply, Func<ValueTask<bool>> SettledAsync, Func<ValueTask<string>> NotSettledAsync, Func<long, long, long, string> Details);

    /// <summary>
    /// The measurement loop of the <c>renumber</c> and <c>both</c> triggers. Move -1 warms up (the first link creation
    /// and retirement of the process run cold code) and is not measured. Each move: the pauses in delivery are watched
    /// from the trigger on; the change is applied; the move has settled when <see cref="Move.SettledAsync"/> holds
    /// (at most 5 s) and the receiver has had another MiB since (at most 5 s more). The gap is the longest pause in
    /// delivery over that time. Returns the measured gaps (ms) and the moves that did not settle.
    /// </summary>
    private static async Task<(List<double> Gaps, int Failed)> MeasureMovesAsync(int migrations, ReceiveProbe probe, Func<int, Task<Move>> next, CancellationToken ct)
    {
        var gaps = new List<double>();
        var failed = 0;
        for (var m = -1; m < migrations; m++)
        {
            var move = await next(m);
            var t0 = Stopwatch.GetTimestamp();
            probe.WatchPauses(t0);
            move.Apply();
            var t1 = Stopwatch.GetTimestamp();

            // Settled: the flow runs on the new address(es) and the receiver has had another MiB since.
            var moved = await WaitAsync(move.SettledAsync, TimeSpan.FromSeconds(5), ct);
            var t2 = Stopwatch.GetTimestamp();
            var total = probe.Total;
            var flowing = moved && await WaitAsync(() => probe.Total >= total + (1024 * 1024), TimeSpan.FromSeconds(5), ct);
            var pause = probe.StopWatchingPauses();
            if (!moved || !flowing)
            {
                failed++;
                Console.Error.WriteLine($"{move.Name}: {(moved ? "no data after the move" : await move.NotSettledAsync())} within 5 s");
            }
            else if (m < 0)
            {
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"warm-up move (not measured): gap_ms={Stopwatch.GetElapsedTime(0, pause).TotalMilliseconds:F1}"));
            }
            else
            {
                gaps.Add(Stopwatch.GetElapsedTime(0, pause).TotalMilliseconds);
                if (Environment.GetEnvironmentVariable("MIGRATION_VERBOSE") == "1")
                {
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"move {m}: gap_ms={Stopwatch.GetElapsedTime(0, pause).TotalMilliseconds:F1} {move.Details(t0, t1, t2)}"));
                }
            }

            await Task.Delay(10, ct);
        }

        return (gaps, failed);
    }

    /// <summary>Sets the link down (the engine moves its flows); posts to the engine before it first awaits.</summary>
    private static async ValueTask<int> SetDownAsync(ServalHost host, int link, CancellationToken ct)
    {
        await host.Admin.SetLinkUpAsync(link, false, ct);
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

    /// <summary>
    /// The benchmark's stream: 64 KiB chunks taken at varying offsets of a random pool (so every position differs),
    /// written until stopped and hashed on both ends.
    /// </summary>
    private sealed class BenchStream
    {
        private readonly byte[] _pool = new byte[(16 * 1024 * 1024) + Chunk];
        private int _stop;
        private long _written;
        private Task<byte[]> _writer = null!;
        private Task<byte[]> _reader = null!;

        /// <param name="from">The sending connection.</param>
        /// <param name="to">The receiving connection.</param>
        /// <param name="probe">Told of every read.</param>
        /// <param name="readSize">The reader's buffer: small enough that reads come often (pauses are measured between reads).</param>
        /// <param name="ct">Cancels both ends.</param>
        public static BenchStream Start(ServalConnection from, ServalConnection to, ReceiveProbe probe, int readSize, CancellationToken ct)
        {
            var s = new BenchStream();
            new Random(62).NextBytes(s._pool);
            s._writer = Task.Run(
                async () =>
                {
                    using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                    var stream = from.GetStream();
                    for (long i = 0; Volatile.Read(ref s._stop) == 0; i++)
                    {
                        var chunk = s._pool.AsMemory((int)(i * 4099 % (s._pool.Length - Chunk)), Chunk);
                        await stream.WriteAsync(chunk, ct);
                        hash.AppendData(chunk.Span);
                        Interlocked.Add(ref s._written, Chunk);
                    }

                    stream.CompleteWrites();
                    return hash.GetHashAndReset();
                },
                ct);
            s._reader = Task.Run(
                async () =>
                {
                    using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                    var buffer = new byte[readSize];
                    var stream = to.GetStream();
                    int n;
                    while ((n = await stream.ReadAsync(buffer, ct)) > 0)
                    {
                        hash.AppendData(buffer, 0, n);
                        probe.Delivered(n);
                    }

                    return hash.GetHashAndReset();
                },
                ct);
            return s;
        }

        /// <summary>Ends the stream; the bytes written and those lost (all of them when the hashes differ: same length, other content).</summary>
        public async Task<(long Written, long Lost)> FinishAsync(ReceiveProbe probe)
        {
            Volatile.Write(ref _stop, 1);
            var sent = await _writer;
            var received = await _reader;
            var total = Interlocked.Read(ref _written);
            var lost = total - probe.Total;
            if (lost == 0 && !sent.AsSpan().SequenceEqual(received))
            {
                lost = total;
            }

            return (total, lost);
        }
    }

    /// <summary>What the receiving application has read, and when it first read past a given stream offset.</summary>
    private sealed class ReceiveProbe
    {
        private readonly object _gate = new();
        private long _total;
        private long _target = long.MaxValue;
        private long _hitAt;
        private long _pauseFrom;
        private long _lastRead;
        private long _longestPause;

        public long Total => Interlocked.Read(ref _total);

        /// <summary>Starts measuring the longest time between reads, from <paramref name="since"/> (a timestamp).</summary>
        public void WatchPauses(long since)
        {
            lock (_gate)
            {
                _lastRead = since;
                _longestPause = 0;
                _pauseFrom = since;
            }
        }

        /// <summary>Stops measuring; the longest pause (timestamp ticks), counting a pause still open now.</summary>
        public long StopWatchingPauses()
        {
            lock (_gate)
            {
                var longest = Math.Max(_longestPause, Stopwatch.GetTimestamp() - _lastRead);
                _pauseFrom = 0;
                return longest;
            }
        }

        /// <summary>Called by the reader after each read of <paramref name="n"/> bytes.</summary>
        public void Delivered(int n)
        {
            if (Volatile.Read(ref _pauseFrom) != 0)
            {
                lock (_gate)
                {
                    if (_pauseFrom != 0)
                    {
                        var now = Stopwatch.GetTimestamp();
                        _longestPause = Math.Max(_longestPause, now - _lastRead);
                        _lastRead = now;
                    }
                }
            }

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
