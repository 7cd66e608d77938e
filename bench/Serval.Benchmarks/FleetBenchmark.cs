using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Serval.Links;
using Serval.Netns;
using Serval.Stack.ControlPlane;
using Serval.Testing;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// <c>bench/run.sh fleet</c> (root): three servald service routers sharing their registrations through a 3-member
/// etcd cluster, every member and router in its own namespace on a hub namespace that forwards IP; HOSTS simulated
/// hosts (embedded Serval hosts, one address each, in one namespace) bind SERVICES services each and register them
/// with one router of the fleet (host k with router k mod 3, failing over to the next). Measures: registrations per
/// second (first bind -> every router's fleet view holds them all), propagation (a bind at a host -> its FORWARD rule
/// in the table of the router the host does not use), connections from clients through every router, and router
/// failover (a router killed -> the next new connection through the fleet succeeds).
/// </summary>
internal static class FleetBenchmark
{
    private const int Port = 54325;
    private static readonly System.Collections.Concurrent.ConcurrentQueue<string> Failures = new();

    public static async Task<int> RunAsync(string[] args)
    {
        if (NetNamespace.UnsupportedReason is { } reason)
        {
            Console.Error.WriteLine($"fleet: {reason}");
            return 2;
        }

        if (EtcdCluster.Binary is null || EtcdCluster.CtlBinary is null)
        {
            Console.Error.WriteLine($"fleet: {EtcdCluster.SkipReason}");
            return 2;
        }

        if (args.Length < 1 || !File.Exists(args[0]))
        {
            Console.Error.WriteLine("fleet: usage: fleet SERVALD_DLL [HOSTS SERVICES SAMPLES CONNECTS]");
            return 2;
        }

        var servald = args[0];
        var hosts = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 100;
        var services = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 50;
        var samples = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 100;
        var connects = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 100;
        if (hosts is < 3 or > 200 || services < 1 || samples < 1 || connects < 1)
        {
            Console.Error.WriteLine("fleet: HOSTS is 3 to 200; SERVICES, SAMPLES and CONNECTS are positive");
            return 2;
        }

        using var overall = new CancellationTokenSource(TimeSpan.FromSeconds(600));
        var ct = overall.Token;

        // SIGTERM (the run script's timeout) or Ctrl+C: cancel, so that the cleanup below still runs.
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            overall.Cancel();
        });
        using var interrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c =>
        {
            c.Cancel = true;
            overall.Cancel();
        });
        var namespaces = new List<NetNamespace>();
        EtcdCluster? etcd = null;
        var routers = new NetnsServald?[3];
        var simulated = new List<ServalHost>();
        var clientHosts = new List<ServalHost>();
        try
        {
            NetNamespace Ns(string tag)
            {
                var ns = NetNamespace.Create(tag);
                namespaces.Add(ns);
                return ns;
            }

            var hub = Ns("fhub");
            hub.Sysctl("net.ipv4.ip_forward", "1");
            NetNamespace Spoke(string tag, int subnet)
            {
                var ns = Ns(tag);
                Veth.Connect(hub, $"h{subnet}", $"10.63.{subnet}.1/24", ns, "vh", $"10.63.{subnet}.2/24");
                ns.AddRoute("10.63.0.0/16", $"10.63.{subnet}.1");
                return ns;
            }

            var etcdNs = new[] { Spoke("fetcd1", 21), Spoke("fetcd2", 22), Spoke("fetcd3", 23) };
            etcd = await EtcdCluster.StartAsync(etcdNs, ["10.63.21.2", "10.63.22.2", "10.63.23.2"], ct);
            var routerNs = new NetNamespace[3];
            for (var r = 0; r < 3; r++)
            {
                routerNs[r] = Spoke($"frt{r + 1}", 11 + r);
                routers[r] = await StartRouterAsync(routerNs[r], servald, $"r{r + 1}", $"10.63.{11 + r}.2", etcd.ClientUrls, ct);
            }

            // The simulated hosts: one namespace, one address each (10.63.50.10 …), one embedded Serval host each.
            var hostNs = Spoke("fhosts", 50);
            for (var k = 0; k < hosts; k++)
            {
                hostNs.Ip("addr", "add", $"10.63.50.{10 + k}/24", "dev", "vh");
            }

            static RouterEndpoint Router(int r) => new(LinkAddress.Parse($"10.63.{11 + (r % 3)}.2:{Port}"), 1);
            for (var k = 0; k < hosts; k++)
            {
                var address = IPAddress.Parse($"10.63.50.{10 + k}");
                var kk = k;
                simulated.Add(hostNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
                {
                    Name = $"sim{kk}",
                    Links = [new UdpLink(address, Port)],
                    MonitorInterfaces = false,
                    Registration = new HostControllerOptions { Routers = [Router(kk), Router(kk + 1)], RouterSelection = RouterSelection.One },
                }).AsTask().GetAwaiter().GetResult()));
            }

            var cliNs = Spoke("fcli", 60);
            for (var j = 0; j < 4; j++)
            {
                cliNs.Ip("addr", "add", $"10.63.60.{10 + j}/24", "dev", "vh");
            }

            for (var j = 0; j < 4; j++)
            {
                // Clients 0-2 use router j only; client 3 uses all three (the failover measurement).
                var jj = j;
                var address = IPAddress.Parse($"10.63.60.{10 + j}");
                clientHosts.Add(cliNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
                {
                    Name = $"client{jj}",
                    Links = [new UdpLink(address, Port)],
                    MonitorInterfaces = false,
                    Registration = new HostControllerOptions
                    {
                        Routers = jj < 3 ? [Router(jj)] : [Router(0), Router(1), Router(2)],
                        RouterSelection = RouterSelection.One,
                    },
                }).AsTask().GetAwaiter().GetResult()));
            }

            Console.Error.WriteLine($"fleet: etcd, 3 routers, {hosts} simulated hosts and 4 clients up; registering {hosts * services} services");

            // 1. Registrations: every host binds all its services at once; done when every router's fleet view holds them all.
            var total = hosts * services;
            var listeners = new List<ServalListener>(total);
            var started = Stopwatch.StartNew();
            var binds = simulated.Select((h, k) => Task.Run(async () =>
            {
                var mine = new List<ServalListener>(services);
                for (var s = 0; s < services; s++)
                {
                    mine.Add(await ServalEcho.ListenAsync(h, Service(k, s), ct));
                }

                return mine;
            })).ToList();
            foreach (var b in binds)
            {
                listeners.AddRange(await b);
            }

            var bound = started.Elapsed;
            var counts = new long[3];
            while (started.Elapsed < TimeSpan.FromSeconds(120))
            {
                for (var r = 0; r < 3; r++)
                {
                    counts[r] = await FleetCountAsync(routers[r]!, ct);
                }

                if (counts.All(c => c >= total))
                {
                    break;
                }

                await Task.Delay(5, ct);
            }

            var registrationTime = started.Elapsed;
            var missing = (int)Math.Max(0, total - counts.Min());
            var perSecond = total / registrationTime.TotalSeconds;
            Console.WriteLine($"registration: {total} registrations ({hosts} hosts x {services}) bound in {bound.TotalMilliseconds:F0} ms, in every router's fleet view after {registrationTime.TotalMilliseconds:F0} ms; missing {missing}");

            if (missing > 0)
            {
                for (var r = 0; r < 3; r++)
                {
                    Console.Error.WriteLine($"fleet: router r{r + 1}: {(await routers[r]!.RequestAsync(new JsonObject { ["op"] = "router.status" }, ct)).ToJsonString()}");
                }
            }

            // 2. Propagation: a bind at host k -> routable at the router host k does not register with.
            var propagation = new List<double>();
            var propagationFailed = 0;
            for (var i = 0; i < samples; i++)
            {
                var k = i % hosts;
                var other = routers[(k + 2) % 3]!;
                var service = ServiceId.FromName($"bench.fleet.p.{i}");
                var host = simulated[k].Links[0].LocalAddress.ToString();
                var t0 = Stopwatch.GetTimestamp();
                listeners.Add(await ServalEcho.ListenAsync(simulated[k], service, ct));
                var ok = false;
                while (Stopwatch.GetElapsedTime(t0) < TimeSpan.FromSeconds(propagationFailed > 3 ? 1 : 10))
                {
                    if (await RoutesAsync(other, ServicePrefix.Exact(service), host, ct))
                    {
                        ok = true;
                        break;
                    }

                    await Task.Delay(1, ct);
                }

                if (ok)
                {
                    propagation.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
                else
                {
                    propagationFailed++;
                }
            }

            propagation.Sort();
            var p50 = Percentile(propagation, 0.50);
            var p99 = Percentile(propagation, 0.99);
            Console.WriteLine($"propagation: {propagation.Count} samples, p50 {p50:F1} ms, p99 {p99:F1} ms, max {(propagation.Count > 0 ? propagation[^1] : 0):F1} ms; timed out {propagationFailed}");

            // 3. Clients connect through every router to services of every host.
            var random = new Random(7);
            var connectFailed = 0;
            for (var j = 0; j < 3; j++)
            {
                var failedHere = 0;
                var sw = Stopwatch.StartNew();
                var targets = Enumerable.Range(0, connects).Select(_ => Service(random.Next(hosts), random.Next(services))).ToList();
                var results = await Task.WhenAll(targets.Select(t => ExchangeAsync(clientHosts[j], t, ct)));
                failedHere = results.Count(ok => !ok);
                connectFailed += failedHere;
                Console.WriteLine($"clients: {connects} connections through router r{j + 1} in {sw.ElapsedMilliseconds} ms, {failedHere} failed");
            }

            // 4. Router failover: a client using all three routers connects in a loop; router 1 is killed.
            for (var i = 0; i < 10; i++)
            {
                connectFailed += await ExchangeAsync(clientHosts[3], Service(random.Next(hosts), random.Next(services)), ct) ? 0 : 1;
            }

            var killedAt = Stopwatch.GetTimestamp();
            await routers[0]!.KillAsync();
            double? failover = null;
            var slowest = 0.0;
            for (var i = 0; i < 20; i++)
            {
                var t = Stopwatch.GetTimestamp();
                if (await ExchangeAsync(clientHosts[3], Service(random.Next(hosts), random.Next(services)), ct))
                {
                    failover ??= Stopwatch.GetElapsedTime(killedAt).TotalMilliseconds;
                    slowest = Math.Max(slowest, Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                }
                else
                {
                    connectFailed++;
                }
            }

            Console.WriteLine($"failover: router r1 killed; the next connection through the fleet succeeded {failover ?? double.NaN:F0} ms later; slowest of 20 connections after the kill {slowest:F0} ms");
            foreach (var f in Failures.Take(5))
            {
                Console.Error.WriteLine($"fleet: failed connection: {f}");
            }

            var failed = missing + propagationFailed + connectFailed + (failover is null ? 1 : 0);
            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"fleet: registrations_per_s={perSecond:F0} propagation_ms_p50={p50:F1} propagation_ms_p99={p99:F1} router_failover_ms={failover ?? -1:F0} failed={failed}"));
            foreach (var l in listeners)
            {
                await l.DisposeAsync();
            }

            return 0;
        }
        finally
        {
            foreach (var h in clientHosts.Concat(simulated))
            {
                await h.DisposeAsync();
            }

            if (etcd is not null)
            {
                await etcd.DisposeAsync();
            }

            // Deleting a namespace kills (by id) the processes started in it (the routers).
            for (var i = namespaces.Count - 1; i >= 0; i--)
            {
                await namespaces[i].DisposeAsync();
            }

            foreach (var r in routers)
            {
                r?.DeleteSocket();
            }
        }
    }

    private static ServiceId Service(int host, int service) => ServiceId.FromName($"bench.fleet.{host}.{service}");

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    /// <summary>Connect, one byte echoed, close; false on any failure (10 s bound).</summary>
    private static async Task<bool> ExchangeAsync(ServalHost client, ServiceId service, CancellationToken ct)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = service }, timeout.Token);
            var stream = connection.GetStream();
            await stream.WriteAsync(new byte[] { 42 }, timeout.Token);
            stream.CompleteWrites();
            var buffer = new byte[8];
            var n = await stream.ReadAsync(buffer, timeout.Token);
            return n == 1 && buffer[0] == 42;
        }
        catch (Exception e) when (e is ServalException or IOException or OperationCanceledException)
        {
            Failures.Enqueue($"{service}: {e.GetType().Name}: {e.Message}");
            return false;
        }
    }

    /// <summary>One servald service router of the fleet in its namespace (<paramref name="address"/>), sharing its registrations through <paramref name="etcd"/>.</summary>
    private static Task<NetnsServald> StartRouterAsync(NetNamespace ns, string servald, string name, string address, IReadOnlyList<string> etcd, CancellationToken ct) =>
        NetnsServald.StartAsync(ns, servald, name, [address], ["--Serval:Mode=ServiceRouter", .. etcd.Select((u, i) => $"--Serval:Router:Fleet:Endpoints:{i}={u}")], ct);

    /// <summary>How many registrations the router's fleet view holds.</summary>
    private static async Task<long> FleetCountAsync(NetnsServald router, CancellationToken ct) =>
        (await router.RequestAsync(new JsonObject { ["op"] = "router.status" }, ct))["fleet"]?["registrations"]?.GetValue<long>() ?? 0;

    /// <summary>Whether the router's table holds a FORWARD rule for <paramref name="prefix"/> toward <paramref name="host"/>.</summary>
    private static async Task<bool> RoutesAsync(NetnsServald router, ServicePrefix prefix, string host, CancellationToken ct)
    {
        var response = await router.RequestAsync(new JsonObject { ["op"] = "rules.list", ["prefix"] = prefix.ToString() }, ct);
        return response["rules"]!.AsArray().Any(r => (string?)r!["target"]!["type"] == "forward" && (string?)r["target"]!["address"] == host);
    }
}
