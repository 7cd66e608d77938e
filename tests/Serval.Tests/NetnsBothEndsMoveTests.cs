using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Stack.Services;
using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Both ends move (docs/engine.md, "Both ends move") on real interfaces: a client and a server in their own namespaces,
/// each with one veth to a router namespace and a link policy instead of explicit links; the server registers with a
/// service router in the router namespace and the client connects through it. In the middle of a transfer both lose
/// their address at once and get one in another subnet, so that neither end's RSYN can reach the other's last address:
/// only the RSYN the client relays through the service router (to the server's new registration) brings them together.
/// Needs root.
/// </summary>
[Trait("Tier", "netns")]
public sealed class NetnsBothEndsMoveTests(ITestOutputHelper output)
{
    private static readonly ServiceId Svc = ServiceId.FromName("test.netns.both-move");

    [Fact]
    public async Task A_transfer_survives_both_ends_being_renumbered_at_once_through_the_relayed_rsyn()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(120);
        await using var net = BothMoveNet.Create();
        await using var router = net.StartRouter();
        await using var server = net.StartServer();
        await using var client = net.StartClient();
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await NetnsSteps.PollAsync(() => RouterTargets(router).SequenceEqual([BothMoveNet.Udp(BothMoveNet.ServerA)]), "the router's rule toward the server", ct);

        // By service name alone: the SYN goes through the router, everything after directly.
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Svc }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);
        Assert.Equal(BothMoveNet.Udp(BothMoveNet.ServerA), (await connection.GetFlowInfoAsync(ct))!.PeerAddress);

        var transfer = HashedTransfer.Start(connection, accepted, 48 * 1024 * 1024, ct, seed: 64, readSize: 64 * 1024);
        await transfer.ReachedAsync(6 * 1024 * 1024, ct);
        var movedAt = Stopwatch.GetTimestamp();
        net.RenumberBoth();
        await transfer.CompleteAsync();

        var gap = transfer.LongestPauseAfter(movedAt);
        output.WriteLine(
            $"both renumbered: longest pause in delivery {gap.TotalMilliseconds:F1} ms; client: relayed={client.Counters.RsynsRelayed} migrations {client.Counters.MigrationsStarted}/{client.Counters.MigrationsCompleted}; "
            + $"server: migrations {server.Counters.MigrationsStarted}/{server.Counters.MigrationsCompleted}; router: forwarded={router.Counters.Forwarded} relays resent={router.Counters.RelaysResent}");
        Assert.True(gap < TimeSpan.FromSeconds(3), $"the transfer stalled {gap.TotalMilliseconds:F0} ms");

        // The flow runs between the two new addresses; the client's RSYN went through the router.
        var clientFlow = (await connection.GetFlowInfoAsync(ct))!;
        var serverFlow = (await accepted.GetFlowInfoAsync(ct))!;
        Assert.Equal(BothMoveNet.Udp(BothMoveNet.ClientB), clientFlow.LocalAddress);
        Assert.Equal(BothMoveNet.Udp(BothMoveNet.ServerB), clientFlow.PeerAddress);
        Assert.Equal(BothMoveNet.Udp(BothMoveNet.ServerB), serverFlow.LocalAddress);
        Assert.Equal(BothMoveNet.Udp(BothMoveNet.ClientB), serverFlow.PeerAddress);
        Assert.True(client.Counters.RsynsRelayed >= 1, "the client relayed no RSYN");
        Assert.True(client.Counters.MigrationsCompleted >= 1 && server.Counters.MigrationsCompleted >= 1, "a migration did not complete");
        Assert.Equal(0, client.Counters.MigrationsFailed + server.Counters.MigrationsFailed);
        Assert.Equal(0, client.Counters.StrandedTimeouts + server.Counters.StrandedTimeouts);
        Assert.Equal([BothMoveNet.Udp(BothMoveNet.ServerB)], RouterTargets(router));
    }

    [Fact]
    public async Task Without_the_relay_the_flow_fails_with_MigrationFailed_after_its_user_timeout()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(60);
        var userTimeout = TimeSpan.FromSeconds(3);
        await using var net = BothMoveNet.Create();
        await using var router = net.StartRouter();
        await using var server = net.StartServer(StreamOptions.Default with { UserTimeout = userTimeout });
        await using var client = net.StartClient(TestNet.FastEngine with { RelayRsyn = false }, StreamOptions.Default with { UserTimeout = userTimeout });
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await NetnsSteps.PollAsync(() => RouterTargets(router).SequenceEqual([BothMoveNet.Udp(BothMoveNet.ServerA)]), "the router's rule toward the server", ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Svc }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);
        var stream = connection.GetStream();
        await stream.WriteAsync(new byte[] { 1, 2, 3 }, ct);
        await accepted.GetStream().ReadExactlyAsync(new byte[3], ct);

        var clientRead = stream.ReadAsync(new byte[16], ct).AsTask();
        var serverRead = accepted.GetStream().ReadAsync(new byte[16], ct).AsTask();
        var moved = Stopwatch.StartNew();
        net.RenumberBoth();
        var e = await Assert.ThrowsAsync<ServalException>(() => clientRead.WaitAsync(TimeSpan.FromSeconds(20), ct));
        var took = moved.Elapsed;
        var s = await Assert.ThrowsAsync<ServalException>(() => serverRead.WaitAsync(TimeSpan.FromSeconds(20), ct));
        output.WriteLine($"no relay: the client's connection failed with {e.Error} after {took.TotalMilliseconds:F0} ms (user timeout {userTimeout.TotalSeconds} s), the server's with {s.Error}");
        Assert.Equal(ServalError.MigrationFailed, e.Error);
        Assert.Equal(ServalError.MigrationFailed, s.Error);
        Assert.InRange(took, userTimeout * 0.9, userTimeout + TimeSpan.FromSeconds(3));
        Assert.Equal(0, client.Counters.RsynsRelayed);
        Assert.Equal(0, client.Counters.MigrationsCompleted);
        Assert.True(client.Counters.MigrationsFailed >= 1, $"no failed migration counted (MigrationsFailed {client.Counters.MigrationsFailed})");
    }

    [Fact]
    public async Task A_forged_relayed_rsyn_with_a_wrong_nonce_is_forwarded_by_the_router_and_dropped_by_the_peer()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(60);
        await using var net = BothMoveNet.Create();
        await using var router = net.StartRouter();
        await using var server = net.StartServer();
        await using var client = net.StartClient();
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await NetnsSteps.PollAsync(() => RouterTargets(router).SequenceEqual([BothMoveNet.Udp(BothMoveNet.ServerA)]), "the router's rule toward the server", ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Svc }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);
        await NetnsSteps.ExchangeAsync(connection, accepted, 1, ct);

        // An off-path host that learned both flowIDs (not the nonce) sends an RSYN towards the service from another
        // address: the router relays it like the client's own, the server must not move the flow there.
        var flow = (await connection.GetFlowInfoAsync(ct))!;
        var forged = new SalPacketRepr
        {
            SourceFlow = flow.LocalFlow,
            DestinationFlow = flow.PeerFlow,
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Rsyn, 12345, 0, new Nonce(0x0badc0de0badc0de)),
            ControlOnly = true,
            DestinationService = Svc,
        };
        var attacker = LinkAddress.Parse($"{BothMoveNet.ClientA}:40000");
        var routerAddress = BothMoveNet.Udp(BothMoveNet.RouterAddress);
        var buffer = new byte[256];
        var n = forged.Emit(buffer, [], TransportPseudoHeader.ForLink(attacker, routerAddress));
        Assert.True(n > 0, $"read returned {n}");
        var forwardedBefore = router.Counters.Forwarded;
        using (var socket = net.Client.Invoke(() => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)))
        {
            socket.Bind(new IPEndPoint(IPAddress.Parse(BothMoveNet.ClientA), 40000));
            socket.SendTo(buffer.AsSpan(0, n), SocketFlags.None, new IPEndPoint(IPAddress.Parse(BothMoveNet.RouterAddress), ServalInfo.DefaultUdpPort));
        }

        await NetnsSteps.PollAsync(() => server.Counters.BadNonce >= 1, "the server to drop the forged RSYN", ct);
        output.WriteLine($"forged relayed RSYN: router forwarded {router.Counters.Forwarded - forwardedBefore}, server bad nonce {server.Counters.BadNonce}");
        Assert.Equal(1, router.Counters.Forwarded - forwardedBefore);
        var serverFlow = (await accepted.GetFlowInfoAsync(ct))!;
        Assert.Equal(MigrationState.None, serverFlow.Migration);
        Assert.Equal(BothMoveNet.Udp(BothMoveNet.ClientA), serverFlow.PeerAddress);
        Assert.Equal(0, server.Counters.MigrationsStarted);
        await NetnsSteps.ExchangeAsync(connection, accepted, 2, ct);
    }

    private static List<LinkAddress> RouterTargets(ServalHost router) => NetnsSteps.RouterTargets(router, Svc);
}

/// <summary>
/// Three namespaces: "client" (<c>c0</c>, 10.64.1.1/24) and "server" (<c>s0</c>, 10.64.2.1/24), each joined by a veth
/// to "router", whose ends carry both the old and the new subnet of each side (<c>r1</c>: 10.64.1.254/24 and
/// 10.64.3.254/24; <c>r2</c>: 10.64.2.254/24 and 10.64.4.254/24) and which forwards IPv4; the service router's address
/// 10.64.9.1 is on the router namespace's loopback. Renumbering moves the client to 10.64.3.1 and the server to
/// 10.64.4.1. Every namespace is deleted on disposal, also when creation fails half way.
/// </summary>
internal sealed class BothMoveNet : IAsyncDisposable
{
    public const string ClientA = "10.64.1.1";
    public const string ClientB = "10.64.3.1";
    public const string ServerA = "10.64.2.1";
    public const string ServerB = "10.64.4.1";
    public const string RouterAddress = "10.64.9.1";

    private readonly List<NetNamespace> _all = [];

    private BothMoveNet()
    {
    }

    public NetNamespace Client { get; private set; } = null!;

    public NetNamespace Router { get; private set; } = null!;

    public NetNamespace Server { get; private set; } = null!;

    public static LinkAddress Udp(string address) => LinkAddress.Parse($"{address}:{ServalInfo.DefaultUdpPort}");

    public static BothMoveNet Create()
    {
        var net = new BothMoveNet();
        try
        {
            net.Client = net.Add("bmcli");
            net.Router = net.Add("bmrtr");
            net.Server = net.Add("bmsrv");
            net.Router.Sysctl("net.ipv4.ip_forward", "1");
            Veth.Connect(net.Client, "c0", $"{ClientA}/24", net.Router, "r1", "10.64.1.254/24");
            Veth.Connect(net.Server, "s0", $"{ServerA}/24", net.Router, "r2", "10.64.2.254/24");
            net.Router.Ip("addr", "add", "10.64.3.254/24", "dev", "r1");
            net.Router.Ip("addr", "add", "10.64.4.254/24", "dev", "r2");
            net.Router.Ip("addr", "add", $"{RouterAddress}/32", "dev", "lo");
            net.Client.Ip("route", "add", "default", "via", "10.64.1.254");
            net.Server.Ip("route", "add", "default", "via", "10.64.2.254");
            return net;
        }
        catch
        {
            net.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    /// <summary>The service router, on <see cref="RouterAddress"/>.</summary>
    public ServalHost StartRouter() => NetnsSteps.StartHost(Router, () => new ServalHostOptions
    {
        Name = "router",
        Links = [new UdpLink(IPAddress.Parse(RouterAddress))],
        Engine = TestNet.FastEngine with { Mode = EngineMode.ServiceRouter },
        RouterControl = new RouterControllerOptions(),
    });

    /// <summary>The server: a link policy, registering its services with the router.</summary>
    public ServalHost StartServer(StreamOptions? stream = null, EngineOptions? engine = null) => NetnsSteps.StartHost(Server, () => new ServalHostOptions
    {
        Name = "server",
        LinkPolicies = [new LinkPolicy { IPv6 = false }],
        Engine = engine ?? TestNet.FastEngine,
        Stream = stream ?? StreamOptions.Default,
        RegisterWithRouter = Udp(RouterAddress),
        InterfaceMonitorInterval = TimeSpan.FromSeconds(5),
    });

    /// <summary>The client: a link policy, the router as its default route for services.</summary>
    public ServalHost StartClient(EngineOptions? engine = null, StreamOptions? stream = null) => NetnsSteps.StartHost(Client, () => new ServalHostOptions
    {
        Name = "client",
        LinkPolicies = [new LinkPolicy { IPv6 = false }],
        Engine = engine ?? TestNet.FastEngine,
        Stream = stream ?? StreamOptions.Default,
        DefaultRouter = Udp(RouterAddress),
        InterfaceMonitorInterval = TimeSpan.FromSeconds(5),
    });

    /// <summary>
    /// Both ends lose their address before either gets its new one (so neither's RSYN can reach the other's old
    /// address), then both get the new one with a default route through the router namespace.
    /// </summary>
    public void RenumberBoth() => Move((ClientA, ClientB, "10.64.3.254"), (ServerA, ServerB, "10.64.4.254"));

    /// <summary>Moves them back (<see cref="ClientB"/> → <see cref="ClientA"/>, <see cref="ServerB"/> → <see cref="ServerA"/>) the same way.</summary>
    public void RenumberBothBack() => Move((ClientB, ClientA, "10.64.1.254"), (ServerB, ServerA, "10.64.2.254"));

    private void Move((string From, string To, string Gateway) client, (string From, string To, string Gateway) server)
    {
        Parallel.Invoke(
            () => Client.Ip("addr", "del", $"{client.From}/24", "dev", "c0"),
            () => Server.Ip("addr", "del", $"{server.From}/24", "dev", "s0"));
        Parallel.Invoke(
            () => Client.AddAddressWithDefaultRoute("c0", $"{client.To}/24", client.Gateway),
            () => Server.AddAddressWithDefaultRoute("s0", $"{server.To}/24", server.Gateway));
    }

    private NetNamespace Add(string tag)
    {
        var ns = NetNamespace.Create(tag);
        _all.Add(ns);
        return ns;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var ns in _all)
        {
            await ns.DisposeAsync();
        }
    }
}
