using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Serval.Netns;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// A fleet of three service routers sharing their registrations through a 3-member etcd cluster
/// (docs/router-fleet.md), every process (servald, etcd) in its own network namespace joined to a hub namespace
/// that forwards IP between them: three replicas register through different routers (replica i with router i,
/// failing over to router i+1), three clients use different routers (client j through routers j and j+1). The
/// test process attaches to each servald over its Unix socket and plays the applications. Needs root and etcd.
/// </summary>
[Trait("Tier", "netns")]
[Collection(RegistrationNetnsCollection.Name)]
public sealed class FleetNetnsTests(ITestOutputHelper output)
{
    private static readonly ServiceId Svc = ServiceId.FromName("test.fleet.svc");
    private static readonly ServiceId Svc2 = ServiceId.FromName("test.fleet.svc2");
    private static readonly ServiceId Svc3 = ServiceId.FromName("test.fleet.svc3");
    private static readonly ServiceId Svc4 = ServiceId.FromName("test.fleet.svc4");

    [Fact]
    public async Task Every_client_reaches_every_replica_through_any_router_and_the_fleet_survives_etcd_and_router_failures()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        Assert.SkipWhen(EtcdCluster.Binary is null || EtcdCluster.CtlBinary is null, EtcdCluster.SkipReason);
        var ct = TestNet.Timeout(400);
        await using var net = await Fleet.StartAsync(ct);

        // 1. Replicas bind; each registers through its own router; every router's fleet view holds all three, each
        //    with the router that accepted it, and every client reaches every replica.
        var apps = new ServalHost?[3];
        var listeners = new List<ServalListener>();
        for (var i = 0; i < 3; i++)
        {
            apps[i] = await ServalHost.AttachAsync(net.Replicas[i]!.SocketPath, ct);
            listeners.Add(await ListenAsync(apps[i]!, Svc, (byte)(i + 1), ct));
        }

        var clients = new ServalHost[3];
        for (var j = 0; j < 3; j++)
        {
            clients[j] = await ServalHost.AttachAsync(net.Clients[j].SocketPath, ct);
        }

        for (var r = 0; r < 3; r++)
        {
            Assert.True(await UntilAsync(async () => (await net.FleetHostsAsync(r, Svc, ct)).Count == 3, TimeSpan.FromSeconds(15)), await net.DescribeAsync(ct));
        }

        var view = await net.FleetViewAsync(0, ct);
        for (var i = 0; i < 3; i++)
        {
            Assert.Contains(view, e => e.Host == Fleet.ReplicaAddress(i) && e.Prefix == ServicePrefix.Exact(Svc).ToString() && e.Router == $"r{i + 1}");
        }

        for (var j = 0; j < 3; j++)
        {
            await ReachAllAsync(clients[j], Svc, [1, 2, 3], ct);
        }

        output.WriteLine("3 routers, 3 etcd members: every client reached every replica; the fleet view names the accepting router");

        // 2. One etcd member down: nothing changes. A new registration through router 1 reaches routers 2 and 3.
        await net.Etcd.KillAsync(2);
        listeners.Add(await ListenAsync(apps[0]!, Svc2, 1, ct));
        var sw = Stopwatch.StartNew();
        for (var r = 0; r < 3; r++)
        {
            Assert.True(await UntilAsync(async () => (await net.FleetHostsAsync(r, Svc2, ct)).Count == 1, TimeSpan.FromSeconds(10)), await net.DescribeAsync(ct));
        }

        output.WriteLine($"etcd member 3 killed: a new registration reached every router in {sw.ElapsedMilliseconds} ms");
        for (var j = 0; j < 3; j++)
        {
            await ReachAllAsync(clients[j], Svc, [1, 2, 3], ct);
            await ReachAllAsync(clients[j], Svc2, [1], ct);
            Assert.Equal("ok", await net.RouterStateAsync(j, ct));
        }

        net.Etcd.StartMember(2);
        await net.Etcd.WaitHealthyAsync([2], TimeSpan.FromSeconds(30), ct);

        // 3. etcd unreachable from router 1 (a partition: its routes to the etcd members refuse): router 1 marks itself
        //    degraded and keeps forwarding from its last table; a registration through router 2 meanwhile reaches
        //    router 3 but not router 1, which catches up once the partition heals.
        net.Partition(0, true);
        Assert.True(await UntilAsync(async () => await net.RouterStateAsync(0, ct) == "degraded", TimeSpan.FromSeconds(15)), await net.DescribeAsync(ct));
        listeners.Add(await ListenAsync(apps[1]!, Svc3, 2, ct));
        Assert.True(await UntilAsync(async () => (await net.FleetHostsAsync(2, Svc3, ct)).Count == 1, TimeSpan.FromSeconds(10)), await net.DescribeAsync(ct));
        Assert.Empty(await net.FleetHostsAsync(0, Svc3, ct));
        await ReachAllAsync(clients[0], Svc, [1, 2, 3], ct);
        net.Partition(0, false);
        sw.Restart();
        Assert.True(await UntilAsync(async () => (await net.FleetHostsAsync(0, Svc3, ct)).Count == 1 && await net.RouterStateAsync(0, ct) == "ok", TimeSpan.FromSeconds(20)), await net.DescribeAsync(ct));
        output.WriteLine($"router 1 cut from etcd: degraded, still forwarding; caught up {sw.ElapsedMilliseconds} ms after the partition healed");

        // 4. etcd stopped entirely: every router degraded, forwarding goes on from the last table; a registration
        //    accepted meanwhile (through router 3) is written, and seen by every router, once etcd is back.
        for (var m = 0; m < 3; m++)
        {
            await net.Etcd.KillAsync(m);
        }

        for (var r = 0; r < 3; r++)
        {
            Assert.True(await UntilAsync(async () => await net.RouterStateAsync(r, ct) == "degraded", TimeSpan.FromSeconds(15)), await net.DescribeAsync(ct));
        }

        for (var j = 0; j < 3; j++)
        {
            await ReachAllAsync(clients[j], Svc, [1, 2, 3], ct);
        }

        listeners.Add(await ListenAsync(apps[2]!, Svc4, 3, ct));
        await Task.Delay(1500, ct); // the registration is accepted by router 3 while etcd is down (bounded, not a wait for a condition)
        Assert.Empty(await net.FleetHostsAsync(0, Svc4, ct));
        for (var m = 0; m < 3; m++)
        {
            net.Etcd.StartMember(m);
        }

        sw.Restart();
        await net.Etcd.WaitHealthyAsync([0, 1, 2], TimeSpan.FromSeconds(30), ct);
        for (var r = 0; r < 3; r++)
        {
            Assert.True(await UntilAsync(async () => (await net.FleetHostsAsync(r, Svc4, ct)).Count == 1 && await net.RouterStateAsync(r, ct) == "ok", TimeSpan.FromSeconds(20)), await net.DescribeAsync(ct));
            Assert.Equal(3, (await net.FleetHostsAsync(r, Svc, ct)).Count);
        }

        output.WriteLine($"etcd stopped: forwarding went on; restarted: every router in step again {sw.ElapsedMilliseconds} ms later");
        await ReachAllAsync(clients[0], Svc4, [3], ct);

        // 5. A replica killed (kill -9 of its servald): its registrations disappear fleet-wide within the lease (3 s).
        sw.Restart();
        await net.Replicas[2]!.KillAsync();
        for (var r = 0; r < 3; r++)
        {
            Assert.True(
                await UntilAsync(async () => !(await net.FleetHostsAsync(r, Svc, ct)).Contains(Fleet.ReplicaAddress(2)) && (await net.FleetHostsAsync(r, Svc4, ct)).Count == 0, TimeSpan.FromSeconds(8)),
                await net.DescribeAsync(ct));
        }

        var gone = sw.Elapsed;
        output.WriteLine($"replica 3 killed: its registrations gone from every router after {gone.TotalMilliseconds:F0} ms");
        Assert.True(gone <= TimeSpan.FromSeconds(4.5), $"replica 3's registrations outlived its lease (3 s) by too much: {gone.TotalMilliseconds:F0} ms");
        await DisposeQuietlyAsync(apps[2]!);
        apps[2] = null;

        // 6. A router killed mid-run (kill -9 of router 1): replica 1 moves to router 2 before its lease runs out, so
        //    its registration never leaves the fleet view; client 1 (routers 1 and 2) keeps connecting.
        await net.Routers[0].KillAsync();
        var killed = Stopwatch.StartNew();
        var missing = 0;
        var failures = new List<string>();
        var latencies = new List<double>();
        while (killed.Elapsed < TimeSpan.FromSeconds(6))
        {
            if (!(await net.FleetHostsAsync(1, Svc, ct)).Contains(Fleet.ReplicaAddress(0)))
            {
                missing++;
            }

            var one = Stopwatch.StartNew();
            try
            {
                await ExchangeAsync(clients[0], Svc, ct);
                latencies.Add(one.Elapsed.TotalMilliseconds);
            }
            catch (Exception e) when (e is ServalException or IOException or OperationCanceledException)
            {
                failures.Add(e.Message);
            }
        }

        var accepted = (await net.FleetViewAsync(1, ct)).FirstOrDefault(e => e.Host == Fleet.ReplicaAddress(0) && e.Prefix == ServicePrefix.Exact(Svc).ToString());
        output.WriteLine($"router 1 killed: replica 1's registration now accepted by {accepted.Router}; {latencies.Count} connects through the fleet, slowest {latencies.DefaultIfEmpty().Max():F0} ms");
        Assert.Equal(0, missing);
        Assert.Empty(failures);
        Assert.Equal("r2", accepted.Router);
        Assert.True(latencies.Count > 0 && latencies.Max() < 5000, $"connects after the router died: {string.Join(", ", latencies)}");
        for (var j = 1; j < 3; j++)
        {
            await ReachAllAsync(clients[j], Svc, [1, 2], ct);
        }

        foreach (var l in listeners)
        {
            try
            {
                await l.DisposeAsync();
            }
            catch (ServalException)
            {
                // its daemon is gone
            }
        }

        foreach (var a in apps.Concat(clients))
        {
            if (a is not null)
            {
                await DisposeQuietlyAsync(a);
            }
        }
    }

    private static Task<ServalListener> ListenAsync(ServalHost host, ServiceId service, byte id, CancellationToken ct) =>
        StreamTests.EchoServerAsync(host, service, ct, greeting: new[] { id });

    /// <summary>Connects until every one of <paramref name="ids"/> answered (bounded); fails on a connection error or a missing replica.</summary>
    private static async Task ReachAllAsync(ServalHost client, ServiceId service, byte[] ids, CancellationToken ct)
    {
        var seen = new HashSet<byte>();
        for (var n = 0; n < 200 && seen.Count < ids.Length; n++)
        {
            seen.Add(await ExchangeAsync(client, service, ct));
        }

        Assert.Equal(ids, seen.Order().ToArray());
    }

    /// <summary>One connection: returns the id of the replica that answered (after an echo check).</summary>
    private static async Task<byte> ExchangeAsync(ServalHost client, ServiceId service, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = service }, timeout.Token);
        var stream = connection.GetStream();
        var message = "ping"u8.ToArray();
        await stream.WriteAsync(message, timeout.Token);
        stream.CompleteWrites();
        var reply = new MemoryStream();
        await stream.CopyToAsync(reply, timeout.Token);
        var bytes = reply.ToArray();
        Assert.True(bytes.Length == 5 && bytes.AsSpan(1).SequenceEqual(message), $"bad echo: {Convert.ToHexString(bytes)}");
        return bytes[0];
    }

    private static Task<bool> UntilAsync(Func<Task<bool>> condition, TimeSpan limit, int pollMs = 20) =>
        Eventually.WithinAsync(async () => await condition(), limit, TimeSpan.FromMilliseconds(pollMs));

    private static async Task DisposeQuietlyAsync(ServalHost host)
    {
        try
        {
            await host.DisposeAsync();
        }
        catch (ServalException)
        {
            // its daemon is gone
        }
    }

    private readonly record struct FleetEntry(string Prefix, string Host, string Router);

    /// <summary>
    /// The namespaces (a hub forwarding IP; etcd members 10.62.2{1,2,3}.2, routers 10.62.1{1,2,3}.2, replicas
    /// 10.62.3{1,2,3}.2, clients 10.62.4{1,2,3}.2, each on a veth to the hub), the etcd cluster and the servald
    /// processes; everything is removed on disposal (processes killed by id, then the namespaces deleted).
    /// </summary>
    private sealed class Fleet : IAsyncDisposable
    {
        private readonly List<NetNamespace> _namespaces = [];
        private readonly NetNamespace[] _routerNs = new NetNamespace[3];

        public EtcdCluster Etcd { get; private set; } = null!;

        public NetnsServald[] Routers { get; } = new NetnsServald[3];

        public NetnsServald?[] Replicas { get; } = new NetnsServald?[3];

        public NetnsServald[] Clients { get; } = new NetnsServald[3];

        public static string ReplicaAddress(int i) => $"10.62.{31 + i}.2:{ServalInfo.DefaultUdpPort}";

        public static async Task<Fleet> StartAsync(CancellationToken ct)
        {
            var t = new Fleet();
            try
            {
                var hub = t.Add(NetNamespace.Create("hub"));
                hub.Sysctl("net.ipv4.ip_forward", "1");
                NetNamespace Spoke(string tag, int subnet)
                {
                    var ns = t.Add(NetNamespace.Create(tag));
                    Veth.Connect(hub, $"h{subnet}", $"10.62.{subnet}.1/24", ns, "vh", $"10.62.{subnet}.2/24");
                    ns.AddRoute("10.62.0.0/16", $"10.62.{subnet}.1");
                    return ns;
                }

                var etcdNs = new NetNamespace[3];
                for (var m = 0; m < 3; m++)
                {
                    etcdNs[m] = Spoke($"etcd{m + 1}", 21 + m);
                }

                t.Etcd = await EtcdCluster.StartAsync(etcdNs, ["10.62.21.2", "10.62.22.2", "10.62.23.2"], ct);
                var endpoints = t.Etcd.ClientUrls.Select((u, i) => $"--Serval:Router:Fleet:Endpoints:{i}={u}").ToArray();
                for (var r = 0; r < 3; r++)
                {
                    t._routerNs[r] = Spoke($"r{r + 1}", 11 + r);
                    t.Routers[r] = await ServaldProcess.InNamespaceAsync(
                        t._routerNs[r],
                        $"r{r + 1}",
                        [$"10.62.{11 + r}.2"],
                        ["--Serval:Mode=ServiceRouter", .. endpoints],
                        ct);
                }

                for (var i = 0; i < 3; i++)
                {
                    var ns = Spoke($"rep{i + 1}", 31 + i);
                    t.Replicas[i] = await ServaldProcess.InNamespaceAsync(
                        ns,
                        $"replica{i + 1}",
                        [$"10.62.{31 + i}.2"],
                        [
                            $"--Serval:Registration:Routers:0=10.62.{11 + i}.2",
                            $"--Serval:Registration:Routers:1=10.62.{11 + ((i + 1) % 3)}.2",
                            "--Serval:Registration:RouterSelection=One",
                            "--Serval:Registration:RefreshMs=1000",
                            "--Serval:Registration:LeaseMs=3000",
                        ],
                        ct);
                }

                for (var j = 0; j < 3; j++)
                {
                    var ns = Spoke($"cl{j + 1}", 41 + j);
                    t.Clients[j] = await ServaldProcess.InNamespaceAsync(
                        ns,
                        $"client{j + 1}",
                        [$"10.62.{41 + j}.2"],
                        [
                            $"--Serval:Registration:Routers:0=10.62.{11 + j}.2",
                            $"--Serval:Registration:Routers:1=10.62.{11 + ((j + 1) % 3)}.2",
                            "--Serval:Registration:RouterSelection=One",
                        ],
                        ct);
                }

                return t;
            }
            catch
            {
                await t.DisposeAsync();
                throw;
            }
        }

        private NetNamespace Add(NetNamespace ns)
        {
            _namespaces.Add(ns);
            return ns;
        }

        /// <summary>Cuts router <paramref name="r"/> from the etcd members (its routes to them refuse) or heals it.</summary>
        public void Partition(int r, bool cut)
        {
            for (var m = 0; m < 3; m++)
            {
                _routerNs[r].Ip("route", cut ? "add" : "del", "prohibit", $"10.62.{21 + m}.2/32");
            }
        }

        public async Task<IReadOnlyList<FleetEntry>> FleetViewAsync(int r, CancellationToken ct)
        {
            var response = await Routers[r].RequestAsync(new JsonObject { ["op"] = "router.registrations" }, ct);
            return [.. response["fleet"]!["registrations"]!.AsArray()
                .Where(e => (string?)e!["state"] == "active")
                .Select(e => new FleetEntry((string)e!["prefix"]!, (string)e["host"]!, (string)e["router"]!))];
        }

        /// <summary>The hosts router <paramref name="r"/>'s fleet view holds an active registration of <paramref name="service"/> for.</summary>
        public async Task<IReadOnlyList<string>> FleetHostsAsync(int r, ServiceId service, CancellationToken ct) =>
            [.. (await FleetViewAsync(r, ct)).Where(e => e.Prefix == ServicePrefix.Exact(service).ToString()).Select(e => e.Host)];

        public async Task<string> RouterStateAsync(int r, CancellationToken ct) =>
            (string)(await Routers[r].RequestAsync(new JsonObject { ["op"] = "router.status" }, ct))["state"]!;

        public async Task<string> DescribeAsync(CancellationToken ct)
        {
            var text = new StringBuilder();
            for (var r = 0; r < 3; r++)
            {
                try
                {
                    text.AppendLine((await Routers[r].RequestAsync(new JsonObject { ["op"] = "router.registrations" }, ct)).ToJsonString());
                }
                catch (Exception e) when (e is IOException or SocketException or InvalidOperationException or OperationCanceledException)
                {
                    text.AppendLine($"router {r + 1}: {e.Message}");
                }
            }

            foreach (var d in (NetnsServald?[])[.. Routers, .. Clients, .. Replicas])
            {
                if (d is not null)
                {
                    text.AppendLine(d.Describe());
                }
            }

            return text.ToString();
        }

        public async ValueTask DisposeAsync()
        {
            if (Etcd is not null)
            {
                await Etcd.DisposeAsync();
            }

            // Disposing a namespace kills (by id) every process started in it, then deletes it.
            for (var i = _namespaces.Count - 1; i >= 0; i--)
            {
                await _namespaces[i].DisposeAsync();
            }

            foreach (var d in (NetnsServald?[])[.. Routers, .. Clients, .. Replicas])
            {
                d?.DeleteSocket();
            }
        }
    }
}
