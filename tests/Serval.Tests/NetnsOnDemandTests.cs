using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Serval.Netns;
using Serval.Resolution;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Resolution on demand (docs/resolution.md) between hosts in network namespaces, with real servald processes: a
/// client host whose only route for the service is the default DELAY rule, a replica host, and where the rule comes
/// from — a service router answering the client's Resolve message, a dnsmasq answering the documented SRV records, or
/// a rule added by hand while the SYN is held — each in its own namespace on a hub that forwards IP. The held SYN
/// must leave when the rule appears: the connection completes well before the engine would drop it (5 s), the
/// client's counters show it held once and released once (never expired), and a few MB cross in both directions with
/// their SHA-256 checked at the receiving end. Needs root (skipped otherwise), and dnsmasq for the DNS case.
/// </summary>
[Trait("Tier", "netns")]
public sealed class NetnsOnDemandTests(ITestOutputHelper output)
{
    private const string Zone = "serval.test";
    private const int TransferSize = 3 * 1024 * 1024;

    /// <summary>The engine holds a packet this long (EngineOptions.DelayQueueLifetime) before dropping it.</summary>
    private static readonly TimeSpan HoldLifetime = TimeSpan.FromSeconds(5);

    /// <summary>A released connect completes within this; one the engine dropped would take more than <see cref="HoldLifetime"/>.</summary>
    private static readonly TimeSpan WellBeforeExpiry = TimeSpan.FromSeconds(2.5);

    [Fact]
    public async Task A_held_connect_leaves_as_soon_as_the_service_router_in_another_namespace_answers_the_resolve()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(120);
        var svc = ServiceId.FromName("test.netns.ondemand.router");
        await using var net = await OnDemandNet.CreateAsync();
        var router = await net.StartAsync(net.Resolver, "router", OnDemandNet.ResolverAddress, ["--Serval:Mode=ServiceRouter"], ct);
        var routerSetting = $"--Serval:Registration:Routers:0={OnDemandNet.ResolverAddress}";
        var (replica, client) = await StartBothAsync(net, [routerSetting], [routerSetting, "--Serval:Resolver:Routers=true"], ct);

        await using var replicaApp = await ServalHost.AttachAsync(replica.SocketPath, ct);
        await using var clientApp = await ServalHost.AttachAsync(client.SocketPath, ct);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = replicaApp, ListenEndPoint = new ServiceEndPoint(svc) }, ct);
        await PollAsync(
            async () => (await router.RequestAsync(new JsonObject { ["op"] = "router.registrations" }, ct))["registrations"]!.AsArray()
                .Any(r => (string?)r!["prefix"] == ServicePrefix.Exact(svc).ToString() && (string?)r["host"] == OnDemandNet.Udp(OnDemandNet.ReplicaAddress).ToString()),
            "the replica's registration at the router",
            ct);
        AssertOnlyDelayResolves(clientApp, svc);

        var elapsed = await ConnectAndTransferAsync(clientApp, listener, svc, ct);
        var stats = await client.RequestAsync(new JsonObject { ["op"] = "stats" }, ct);
        var routerStats = await router.RequestAsync(new JsonObject { ["op"] = "router.registrations" }, ct);
        output.WriteLine($"router resolve: connect {elapsed.TotalMilliseconds:F1} ms; client engine {Counters(stats["engine"], "delayed", "delayReleased", "delayExpired")}, resolver {Counters(stats["resolver"], "resolved", "unresolved")}; router {Counters(routerStats["counters"], "resolveRequests")}");
        AssertHeldThenReleased(stats, elapsed, "the router's answer");
        Assert.True(stats["resolver"]?["resolved"]?.GetValue<long>() == 1, $"the client's resolver did not count one answer: {stats["resolver"]}");
        Assert.True(routerStats["counters"]?["resolveRequests"]?.GetValue<long>() >= 1, $"the router answered no Resolve: {routerStats["counters"]}");

        // The answer became a rule straight to the replica: the router answered, it did not forward the SYN.
        AssertRuleToReplica(clientApp, svc);
        var routerEngine = (await router.RequestAsync(new JsonObject { ["op"] = "stats" }, ct))["engine"];
        Assert.True(routerEngine?["forwarded"]?.GetValue<long>() == 0, $"the router forwarded packets: {Counters(routerEngine, "forwarded")}");
    }

    [Fact]
    public async Task A_held_connect_leaves_as_soon_as_dnsmasq_in_another_namespace_answers_the_srv_query()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        Assert.SkipWhen(Dnsmasq.Binary is null, Dnsmasq.SkipReason);
        var ct = TestNet.Timeout(120);
        var svc = ServiceId.FromName("test.netns.ondemand.dns");
        await using var net = await OnDemandNet.CreateAsync();
        // The documented records (docs/resolution.md): SRV at _serval._udp.H1.H2.ZONE toward a host name, its A record.
        var name = DnsServiceResolver.RecordName(svc, Zone);
        await using var dns = await Dnsmasq.StartInNamespaceAsync(net.Resolver, IPAddress.Parse(OnDemandNet.ResolverAddress), Zone, [
            $"srv-host=_serval._udp.{name},replica.{Zone},{ServalInfo.DefaultUdpPort},0,1",
            $"host-record=replica.{Zone},{OnDemandNet.ReplicaAddress}",
        ], localTtl: 30);
        var (replica, client) = await StartBothAsync(
            net,
            ["--Serval:RouterDiscovery=false"],
            ["--Serval:RouterDiscovery=false", $"--Serval:Resolver:Dns:Servers:0={OnDemandNet.ResolverAddress}", $"--Serval:Resolver:Dns:Zone={Zone}"],
            ct);

        await using var replicaApp = await ServalHost.AttachAsync(replica.SocketPath, ct);
        await using var clientApp = await ServalHost.AttachAsync(client.SocketPath, ct);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = replicaApp, ListenEndPoint = new ServiceEndPoint(svc) }, ct);
        AssertOnlyDelayResolves(clientApp, svc);

        var elapsed = await ConnectAndTransferAsync(clientApp, listener, svc, ct);
        var stats = await client.RequestAsync(new JsonObject { ["op"] = "stats" }, ct);
        output.WriteLine($"dns resolve: connect {elapsed.TotalMilliseconds:F1} ms; client engine {Counters(stats["engine"], "delayed", "delayReleased", "delayExpired")}, resolver {Counters(stats["resolver"], "resolved", "unresolved")}");
        AssertHeldThenReleased(stats, elapsed, "dnsmasq's answer");
        Assert.True(stats["resolver"]?["resolved"]?.GetValue<long>() == 1, $"the client's resolver did not count one answer: {stats["resolver"]}");
        Assert.Contains($"_serval._udp.{name}", dns.Output, StringComparison.Ordinal); // asked by the client, logged by dnsmasq
        var rule = AssertRuleToReplica(clientApp, svc);
        Assert.True(rule.Priority == 100, $"the answer's rule has priority {rule.Priority}, not the resolver's 100");
    }

    [Fact]
    public async Task Held_connects_leave_the_moment_rules_are_added_by_hand_through_the_api_and_the_control_socket()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(120);
        var viaApi = ServiceId.FromName("test.netns.ondemand.api");
        var viaControl = ServiceId.FromName("test.netns.ondemand.control");
        await using var net = await OnDemandNet.CreateAsync();
        var (replica, client) = await StartBothAsync(net, ["--Serval:RouterDiscovery=false"], ["--Serval:RouterDiscovery=false"], ct);

        // No resolver: the DELAY rule is added as `servalctl service add default delay` adds it (rules.add), at the
        // priority above every other default rule, so nothing answers until a rule for the service appears.
        var delay = await client.RequestAsync(new JsonObject { ["op"] = "rules.add", ["prefix"] = ServicePrefix.Default.ToString(), ["target"] = "delay", ["priority"] = 20 }, ct);
        Assert.True(delay["ok"]?.GetValue<bool>() == true, delay.ToJsonString());
        await using var replicaApp = await ServalHost.AttachAsync(replica.SocketPath, ct);
        await using var clientApp = await ServalHost.AttachAsync(client.SocketPath, ct);
        await using var apiListener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = replicaApp, ListenEndPoint = new ServiceEndPoint(viaApi) }, ct);
        await using var controlListener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = replicaApp, ListenEndPoint = new ServiceEndPoint(viaControl) }, ct);
        AssertOnlyDelayResolves(clientApp, viaApi);
        AssertOnlyDelayResolves(clientApp, viaControl);

        // Both connects are held; they stay held (a third of the hold time) while no rule exists.
        var connectApi = ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = clientApp, Service = viaApi }, ct).AsTask();
        var connectControl = ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = clientApp, Service = viaControl }, ct).AsTask();
        await PollAsync(async () => EngineCounter(await client.RequestAsync(new JsonObject { ["op"] = "stats" }, ct), "delayed") == 2, "both SYNs to be held", ct);
        await Task.Delay(HoldLifetime / 3, ct); // the scenario: an operator takes a while
        Assert.False(connectApi.IsCompleted || connectControl.IsCompleted, $"a connect completed without a rule: {connectApi.Status}, {connectControl.Status}");
        var held = await client.RequestAsync(new JsonObject { ["op"] = "stats" }, ct);
        Assert.True(EngineCounter(held, "delayReleased") == 0 && EngineCounter(held, "delayExpired") == 0, $"held SYNs left early: {Counters(held["engine"], "delayed", "delayReleased", "delayExpired")}");

        // 1. A rule through the API (an attached application's AddRuleAsync): that connect leaves, the other stays held.
        var replicaUdp = OnDemandNet.Udp(OnDemandNet.ReplicaAddress);
        var added = Stopwatch.StartNew();
        await clientApp.Admin.AddRuleAsync(ServicePrefix.Exact(viaApi), clientApp.Admin.ForwardTo(replicaUdp), cancellationToken: ct);
        var first = await WaitConnectAsync(connectApi, "the connect released by the API's rule", ct);
        var apiElapsed = added.Elapsed;
        Assert.False(connectControl.IsCompleted, "the other held connect left with the first rule");
        var afterApi = await client.RequestAsync(new JsonObject { ["op"] = "stats" }, ct);
        Assert.True(EngineCounter(afterApi, "delayReleased") == 1, $"one release expected after the API's rule: {Counters(afterApi["engine"], "delayed", "delayReleased", "delayExpired")}");

        // 2. A rule through the control socket, the request `servalctl service add SERVICE ADDRESS` sends.
        added.Restart();
        var add = await client.RequestAsync(new JsonObject { ["op"] = "rules.add", ["prefix"] = ServicePrefix.Exact(viaControl).ToString(), ["target"] = replicaUdp.ToString() }, ct);
        Assert.True(add["ok"]?.GetValue<bool>() == true, add.ToJsonString());
        var second = await WaitConnectAsync(connectControl, "the connect released by the control socket's rule", ct);
        var controlElapsed = added.Elapsed;

        var stats = await client.RequestAsync(new JsonObject { ["op"] = "stats" }, ct);
        output.WriteLine($"rules by hand: API rule -> connected {apiElapsed.TotalMilliseconds:F1} ms, rules.add -> connected {controlElapsed.TotalMilliseconds:F1} ms; client engine {Counters(stats["engine"], "delayed", "delayReleased", "delayExpired")}");
        Assert.True(EngineCounter(stats, "delayed") == 2 && EngineCounter(stats, "delayReleased") == 2 && EngineCounter(stats, "delayExpired") == 0, $"expected two SYNs held and released, none expired: {Counters(stats["engine"], "delayed", "delayReleased", "delayExpired")}");
        Assert.True(apiElapsed < WellBeforeExpiry && controlElapsed < WellBeforeExpiry, $"the held SYNs left {apiElapsed.TotalMilliseconds:F0} / {controlElapsed.TotalMilliseconds:F0} ms after their rules (hold: {HoldLifetime.TotalSeconds} s)");

        await using (first)
        await using (second)
        {
            await TransferBothWaysAsync(first, await apiListener.AcceptConnectionAsync(ct), ct);
            await TransferBothWaysAsync(second, await controlListener.AcceptConnectionAsync(ct), ct);
        }
    }

    /// <summary>Starts the replica's and the client's servald at once (each start costs a process start).</summary>
    private static async Task<(NetnsServald Replica, NetnsServald Client)> StartBothAsync(OnDemandNet net, string[] replicaSettings, string[] clientSettings, CancellationToken ct)
    {
        var replica = net.StartAsync(net.ReplicaNs, "replica", OnDemandNet.ReplicaAddress, replicaSettings, ct);
        var client = net.StartAsync(net.ClientNs, "client", OnDemandNet.ClientAddress, clientSettings, ct);
        return (await replica, await client);
    }

    /// <summary>Connects (timed), then sends <see cref="TransferSize"/> bytes each way; returns the connect's duration.</summary>
    private static async Task<TimeSpan> ConnectAndTransferAsync(ServalHost client, ServalListener listener, ServiceId svc, CancellationToken ct)
    {
        var started = Stopwatch.StartNew();
        await using var connection = await WaitConnectAsync(ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = svc }, ct).AsTask(), "the connect", ct);
        var elapsed = started.Elapsed;
        await using var accepted = await listener.AcceptConnectionAsync(ct);
        await TransferBothWaysAsync(connection, accepted, ct);
        return elapsed;
    }

    /// <summary>
    /// The connect, bounded well past the hold lifetime (so that a connect the engine dropped and retried shows up as
    /// a count of expired packets, not as a hang).
    /// </summary>
    private static async Task<ServalConnection> WaitConnectAsync(Task<ServalConnection> connect, string what, CancellationToken ct)
    {
        try
        {
            return await connect.WaitAsync(HoldLifetime * 3, ct);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{what} did not complete within {(HoldLifetime * 3).TotalSeconds} s");
            throw;
        }
    }

    /// <summary><see cref="TransferSize"/> bytes from each end to the other at once, SHA-256 checked where they arrive.</summary>
    private static async Task TransferBothWaysAsync(ServalConnection client, ServalConnection server, CancellationToken ct)
    {
        var up = HashedTransfer.Start(client, server, TransferSize, ct, seed: 68);
        var down = HashedTransfer.Start(server, client, TransferSize, ct, seed: 69);
        await up.CompleteAsync();
        await down.CompleteAsync();
    }

    /// <summary>Before the connect: no rule for the service's prefix, and the default entry's top rules are one DELAY rule.</summary>
    private static void AssertOnlyDelayResolves(ServalHost client, ServiceId svc)
    {
        var rules = client.Admin.GetRules();
        Assert.DoesNotContain(rules, r => r.Prefix.Length > 0 && r.Prefix.Contains(svc));
        var defaults = rules.Where(r => r.Prefix == ServicePrefix.Default).ToList();
        var top = defaults.Where(r => r.Priority == defaults.Max(d => d.Priority)).ToList();
        Assert.True(
            top.Count == 1 && top[0].Target.Type == ServiceTargetType.Delay,
            $"the client's default rules: {string.Join(", ", defaults.Select(r => $"{r.Target} prio {r.Priority}"))}");
    }

    /// <summary>The client's rule for the service: one FORWARD rule, straight to the replica.</summary>
    private static ServiceRuleInfo AssertRuleToReplica(ServalHost client, ServiceId svc)
    {
        var rules = client.Admin.GetRules().Where(r => r.Prefix.Length > 0 && r.Prefix.Contains(svc)).ToList();
        Assert.True(
            rules.Count == 1 && rules[0].Target.Type == ServiceTargetType.Forward && rules[0].Target.Address == OnDemandNet.Udp(OnDemandNet.ReplicaAddress),
            $"the client's rules for the service: {string.Join(", ", rules.Select(r => $"{r.Prefix} -> {r.Target} prio {r.Priority}"))}");
        return rules[0];
    }

    /// <summary>One SYN held by the DELAY rule and released (not expired), and a connect that did not wait for the hold to end.</summary>
    private static void AssertHeldThenReleased(JsonObject stats, TimeSpan connect, string source)
    {
        var seen = Counters(stats["engine"], "delayed", "delayReleased", "delayExpired");
        Assert.True(EngineCounter(stats, "delayed") == 1, $"the SYN was not held once by the DELAY rule: {seen}");
        Assert.True(EngineCounter(stats, "delayReleased") == 1 && EngineCounter(stats, "delayExpired") == 0, $"the held SYN was not released by {source}: {seen}");
        Assert.True(connect < WellBeforeExpiry, $"the connect took {connect.TotalMilliseconds:F0} ms (hold: {HoldLifetime.TotalSeconds} s): {seen}");
    }

    private static long EngineCounter(JsonObject stats, string name) => stats["engine"]?[name]?.GetValue<long>() ?? -1;

    private static string Counters(JsonNode? counters, params string[] names) =>
        string.Join(" ", names.Select(n => $"{n}={counters?[n]?.ToJsonString() ?? "?"}"));

    private static async Task PollAsync(Func<Task<bool>> condition, string what, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(15), $"timed out waiting for {what}");
            await Task.Delay(10, ct);
        }
    }

    /// <summary>
    /// A hub namespace forwarding IPv4 and three spokes, each on a veth to it: the client (10.68.1.2), the replica
    /// (10.68.2.2) and the resolver (10.68.3.2: a service router or a DNS server). Every namespace, and with it every
    /// process started in it, is removed on disposal.
    /// </summary>
    private sealed class OnDemandNet : IAsyncDisposable
    {
        public const string ClientAddress = "10.68.1.2";
        public const string ReplicaAddress = "10.68.2.2";
        public const string ResolverAddress = "10.68.3.2";

        private readonly List<NetNamespace> _namespaces = [];
        private readonly List<NetnsServald> _daemons = [];

        public NetNamespace ClientNs { get; private set; } = null!;

        public NetNamespace ReplicaNs { get; private set; } = null!;

        public NetNamespace Resolver { get; private set; } = null!;

        public static LinkAddress Udp(string address) => LinkAddress.Parse($"{address}:{ServalInfo.DefaultUdpPort}");

        public static Task<OnDemandNet> CreateAsync()
        {
            var net = new OnDemandNet();
            try
            {
                var hub = net.Add(NetNamespace.Create("odhub"));
                hub.Sysctl("net.ipv4.ip_forward", "1");
                NetNamespace Spoke(string tag, int subnet)
                {
                    var ns = net.Add(NetNamespace.Create(tag));
                    Veth.Connect(hub, $"h{subnet}", $"10.68.{subnet}.1/24", ns, "vh", $"10.68.{subnet}.2/24");
                    ns.AddRoute("10.68.0.0/16", $"10.68.{subnet}.1");
                    return ns;
                }

                net.ClientNs = Spoke("odcli", 1);
                net.ReplicaNs = Spoke("odrep", 2);
                net.Resolver = Spoke("odres", 3);
                return Task.FromResult(net);
            }
            catch
            {
                net.DisposeAsync().AsTask().GetAwaiter().GetResult();
                throw;
            }
        }

        /// <summary>servald in <paramref name="ns"/> with one UDP link on <paramref name="address"/>.</summary>
        public async Task<NetnsServald> StartAsync(NetNamespace ns, string name, string address, string[] settings, CancellationToken ct)
        {
            var daemon = await ServaldProcess.InNamespaceAsync(ns, name, [address], settings, ct);
            lock (_daemons)
            {
                _daemons.Add(daemon);
            }

            return daemon;
        }

        private NetNamespace Add(NetNamespace ns)
        {
            _namespaces.Add(ns);
            return ns;
        }

        public async ValueTask DisposeAsync()
        {
            // Disposing a namespace kills (by id) every process started in it, then deletes it.
            for (var i = _namespaces.Count - 1; i >= 0; i--)
            {
                await _namespaces[i].DisposeAsync();
            }

            foreach (var d in _daemons)
            {
                d.DeleteSocket();
            }
        }
    }
}
