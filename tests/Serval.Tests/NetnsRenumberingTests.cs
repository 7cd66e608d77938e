using System.Diagnostics;
using System.Net;
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
/// Links follow addresses (docs/runtime.md, "Link policies"), on real interfaces: a mobile host with one veth
/// interface and a link policy instead of explicit links, whose only address is replaced, removed for a while or
/// removed for good; IPv6 addresses appearing. The peers (a plain host, a service router, a client) live in a "core"
/// namespace on the other end of the veth, which carries both the old and the new subnet. Needs root.
/// </summary>
[Trait("Tier", "netns")]
public sealed class NetnsRenumberingTests(ITestOutputHelper output)
{
    private static readonly ServiceId Svc = ServiceId.FromName("test.netns.renumber");

    [Fact]
    public async Task A_transfer_survives_the_only_address_being_replaced_by_one_in_another_subnet()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(120);
        await using var net = RenumberNet.Create();
        await using var peer = net.StartPeer();
        await using var mobile = net.StartMobile(defaultRouter: peer.Address());
        Assert.Equal([LinkAddress.Parse($"{RenumberNet.MobileA}:54325")], mobile.Links.Select(l => l.LocalAddress));

        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = peer, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = mobile, Service = Svc, AdvisoryAddress = peer.Address() }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);

        var transfer = HashedTransfer.Start(connection, accepted, 48 * 1024 * 1024, ct);
        await transfer.ReachedAsync(6 * 1024 * 1024, ct);
        var renumberedAt = Stopwatch.GetTimestamp();
        net.Renumber(RenumberNet.MobileA, RenumberNet.MobileB, RenumberNet.GatewayB);
        await transfer.CompleteAsync();

        var gap = transfer.LongestPauseAfter(renumberedAt);
        output.WriteLine($"renumbering {RenumberNet.MobileA} -> {RenumberNet.MobileB}: longest pause in delivery {gap.TotalMilliseconds:F1} ms; mobile: stranded={mobile.Counters.FlowsStranded} migrations started={mobile.Counters.MigrationsStarted} completed={mobile.Counters.MigrationsCompleted}");
        Assert.True(gap < TimeSpan.FromSeconds(3), $"the transfer stalled {gap.TotalMilliseconds:F0} ms");

        // The old link is retired (its interface down for good), a new one carries the flow from the new address.
        var renumbered = LinkAddress.Parse($"{RenumberNet.MobileB}:54325");
        var interfaces = await mobile.GetInterfacesAsync(ct);
        Assert.False(interfaces[1].IsUp);
        Assert.Contains(interfaces, i => i.Address == renumbered && i.IsUp);
        var flow = (await connection.GetFlowInfoAsync(ct))!;
        Assert.Equal(renumbered, flow.LocalAddress);
        Assert.Equal(renumbered, (await accepted.GetFlowInfoAsync(ct))!.PeerAddress);
        Assert.True(mobile.Counters.MigrationsCompleted >= 1, "no migration completed");
        Assert.Equal(0, mobile.Counters.MigrationsFailed);
        Assert.Equal(0, mobile.Counters.StrandedTimeouts);

        // The default rule (DefaultRouter) went with the old link and is back on the new one: a connection by
        // service name alone still resolves.
        var newLink = interfaces.Single(i => i.Address == renumbered).Index;
        // (The new link's broadcast default rule, below it, is there too.)
        Assert.Single(mobile.Admin.GetRules(), r => r.Prefix == ServicePrefix.Default && r.Target.Type == ServiceTargetType.Forward && r.Target.Interface == newLink && r.Priority == ServiceTable.DefaultRouterPriority);
        await using var byName = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = mobile, Service = Svc }, ct);
        await using var byNameAccepted = await listener.AcceptConnectionAsync(ct);
        await NetnsSteps.ExchangeAsync(byName, byNameAccepted, 7, ct);
        Assert.Equal(renumbered, (await byName.GetFlowInfoAsync(ct))!.LocalAddress);
    }

    [Fact]
    public async Task A_flow_waits_while_the_address_is_gone_and_resumes_when_it_comes_back()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(120);
        await using var net = RenumberNet.Create();
        await using var peer = net.StartPeer();
        await using var mobile = net.StartMobile();
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = peer, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = mobile, Service = Svc, AdvisoryAddress = peer.Address() }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);

        var transfer = HashedTransfer.Start(connection, accepted, 32 * 1024 * 1024, ct);
        await transfer.ReachedAsync(4 * 1024 * 1024, ct);
        net.Mobile.Ip("addr", "del", $"{RenumberNet.MobileA}/24", "dev", "mv0");
        await NetnsSteps.PollAsync(() => mobile.Counters.FlowsStranded == 1, "the flow to lose its only address", ct);
        Assert.False((await mobile.GetInterfacesAsync(ct))[1].IsUp);

        // Gone for a few seconds (the scenario, not a wait for a condition): nothing is delivered meanwhile once what
        // was in flight has arrived.
        await Task.Delay(TimeSpan.FromSeconds(0.5), ct);
        var before = transfer.Received;
        await Task.Delay(TimeSpan.FromSeconds(2.5), ct);
        Assert.Equal(before, transfer.Received);
        Assert.False(transfer.IsCompleted);

        var backAt = Stopwatch.GetTimestamp();
        net.AddAddress(RenumberNet.MobileA, RenumberNet.GatewayA);
        await transfer.CompleteAsync();
        var resumed = transfer.LongestPauseAfter(backAt);
        output.WriteLine($"address back after 3 s: delivery resumed {resumed.TotalMilliseconds:F1} ms after it was added");
        Assert.True(resumed < TimeSpan.FromSeconds(3), $"the flow took {resumed.TotalMilliseconds:F0} ms to resume");

        // The same address, on a new link (the old index was still the flow's while it waited).
        var flow = (await connection.GetFlowInfoAsync(ct))!;
        Assert.Equal(LinkAddress.Parse($"{RenumberNet.MobileA}:54325"), flow.LocalAddress);
        Assert.Equal(2, flow.Interface);
        Assert.Equal(2, mobile.Links.Count);
        Assert.Equal(0, mobile.Counters.StrandedTimeouts);
        Assert.Equal(0, mobile.Counters.MigrationsFailed);
    }

    [Fact]
    public async Task The_rsyn_refused_for_want_of_a_route_leaves_again_when_the_route_appears()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(60);
        await using var net = RenumberNet.Create();
        await using var peer = net.StartPeer();
        await using var mobile = net.StartMobile();
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = peer, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = mobile, Service = Svc, AdvisoryAddress = peer.Address() }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);
        await NetnsSteps.ExchangeAsync(connection, accepted, 1, ct);

        // The address is replaced, but the new default route comes later (an address, then its route, as ip and DHCP
        // clients add them): the flow moves to the new address's link and its RSYN finds no route to the peer.
        net.Mobile.IpBatch($"addr del {RenumberNet.MobileA}/24 dev mv0", $"addr add {RenumberNet.MobileB}/24 dev mv0");
        var renumbered = LinkAddress.Parse($"{RenumberNet.MobileB}:54325");
        await NetnsSteps.PollAsync(
            () => mobile.Counters.MigrationsStarted >= 1 && mobile.Links.Any(l => l.LocalAddress == renumbered && l.Counters.SendErrors >= 1),
            "the RSYN from the new address to be refused for want of a route",
            ct);

        // Two timer retransmissions refused as well: the next one is now at least four RTOs away, so an RSYN that gets
        // through soon after the route appears is the resend on RTM_NEWROUTE, not the timer's.
        await NetnsSteps.PollAsync(() => mobile.Counters.ControlRetransmissions >= 2, "two RSYN retransmissions", ct);
        var retransmissions = mobile.Counters.ControlRetransmissions;
        Assert.Equal(0, mobile.Counters.MigrationsCompleted);
        var routed = Stopwatch.StartNew();
        net.Mobile.Ip("route", "replace", "default", "via", RenumberNet.GatewayB);
        await NetnsSteps.PollAsync(() => mobile.Counters.MigrationsCompleted == 1, "the migration to complete after the route appeared", ct);
        var took = routed.Elapsed;
        output.WriteLine($"route added -> migration completed after {took.TotalMilliseconds:F1} ms; RSYN retransmissions before the route {retransmissions}, after {mobile.Counters.ControlRetransmissions}; send errors on the new link {mobile.Links.Single(l => l.LocalAddress == renumbered).Counters.SendErrors}");
        Assert.True(
            mobile.Counters.ControlRetransmissions == retransmissions,
            $"the migration completed through a timer retransmission ({retransmissions} -> {mobile.Counters.ControlRetransmissions}, {took.TotalMilliseconds:F0} ms after the route), not through the resend when the route appeared");

        Assert.Equal(renumbered, (await connection.GetFlowInfoAsync(ct))!.LocalAddress);
        Assert.Equal(renumbered, (await accepted.GetFlowInfoAsync(ct))!.PeerAddress);
        await NetnsSteps.ExchangeAsync(connection, accepted, 2, ct);
        Assert.Equal(0, mobile.Counters.MigrationsFailed);
    }

    [Fact]
    public async Task A_flow_without_an_address_fails_with_NetworkDown_after_its_user_timeout()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(60);
        await using var net = RenumberNet.Create();
        await using var peer = net.StartPeer();
        await using var mobile = net.StartMobile(stream: StreamOptions.Default with { UserTimeout = TimeSpan.FromSeconds(2) });
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = peer, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = mobile, Service = Svc, AdvisoryAddress = peer.Address() }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);
        var stream = connection.GetStream();
        await stream.WriteAsync(new byte[] { 1, 2, 3 }, ct);
        var three = new byte[3];
        await accepted.GetStream().ReadExactlyAsync(three, ct);

        var read = stream.ReadAsync(new byte[16], ct).AsTask();
        var removed = Stopwatch.StartNew();
        net.Mobile.Ip("addr", "del", $"{RenumberNet.MobileA}/24", "dev", "mv0");
        var e = await Assert.ThrowsAsync<ServalException>(() => read.WaitAsync(TimeSpan.FromSeconds(10), ct));
        var took = removed.Elapsed;
        output.WriteLine($"no address: the connection failed with {e.Error} after {took.TotalMilliseconds:F0} ms (user timeout 2 s)");
        Assert.Equal(ServalError.NetworkDown, e.Error);
        Assert.Equal(System.Net.Sockets.SocketError.NetworkDown, e.SocketErrorCode);
        Assert.InRange(took, TimeSpan.FromSeconds(1.9), TimeSpan.FromSeconds(4));
        Assert.Equal(1, mobile.Counters.StrandedTimeouts);
        var write = await Assert.ThrowsAsync<ServalException>(async () => await stream.WriteAsync(new byte[] { 4 }, ct));
        Assert.Equal(ServalError.NetworkDown, write.Error);
    }

    [Fact]
    public async Task A_registered_replica_that_renumbers_is_reached_at_its_new_address()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(120);
        await using var net = RenumberNet.Create();
        var routerAddress = LinkAddress.Parse($"{RenumberNet.RouterAddress}:54325");
        await using var router = NetnsSteps.StartHost(net.Core, () => new ServalHostOptions
        {
            Name = "router",
            Links = [new UdpLink(IPAddress.Parse(RenumberNet.RouterAddress))],
            Engine = TestNet.FastEngine with { Mode = EngineMode.ServiceRouter },
            RouterControl = new RouterControllerOptions(),
        });
        await using var client = NetnsSteps.StartHost(net.Core, () => new ServalHostOptions
        {
            Name = "client",
            Links = [new UdpLink(IPAddress.Parse(RenumberNet.ClientAddress))],
            Engine = TestNet.FastEngine,
            DefaultRouter = routerAddress,
        });
        await using var replica = net.StartMobile(registerWith: routerAddress);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = replica, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);

        var before = LinkAddress.Parse($"{RenumberNet.MobileA}:54325");
        var after = LinkAddress.Parse($"{RenumberNet.MobileB}:54325");
        await NetnsSteps.PollAsync(() => RouterTargets(router).SequenceEqual([before]), "the router's rule toward the replica", ct);

        // An established connection through the router, then the replica renumbers.
        await using var established = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Svc }, ct);
        await using var first = await listener.AcceptConnectionAsync(ct);
        await NetnsSteps.ExchangeAsync(established, first, 1, ct);
        net.Renumber(RenumberNet.MobileA, RenumberNet.MobileB, RenumberNet.GatewayB);

        // The router's rule now points at the new address only (the old one replaced, not added to).
        await NetnsSteps.PollAsync(() => RouterTargets(router).SequenceEqual([after]), "the router's rule to move to the new address", ct);
        output.WriteLine($"router rules for the service after renumbering: {string.Join(", ", RouterTargets(router))}");

        // New connections through the router reach the replica at its new address.
        for (byte i = 2; i < 6; i++)
        {
            await using var c = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Svc }, ct);
            await using var a = await listener.AcceptConnectionAsync(ct);
            Assert.Equal(after, (await a.GetFlowInfoAsync(ct))!.LocalAddress);
            Assert.Equal(after, (await c.GetFlowInfoAsync(ct))!.PeerAddress);
            await NetnsSteps.ExchangeAsync(c, a, i, ct);
        }

        // The established connection followed the replica (an RSYN from the new address) and still carries data.
        await NetnsSteps.ExchangeAsync(established, first, 9, ct);
        Assert.Equal(after, (await established.GetFlowInfoAsync(ct))!.PeerAddress);
        Assert.Equal(0, replica.Counters.StrandedTimeouts);
    }

    [Fact]
    public async Task An_IPv6_address_that_appears_gets_a_link_that_carries_a_connection_and_goes_with_it()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(60);
        await using var net = RenumberNet.Create();
        net.Core.Ip("addr", "add", "2001:db8:63:1::fe/64", "dev", "cv0", "nodad");
        net.Core.Ip("addr", "add", "2001:db8:63:9::1/128", "dev", "lo");
        await using var peer = NetnsSteps.StartHost(net.Core, () => new ServalHostOptions
        {
            Name = "peer6",
            Links = [new UdpLink(IPAddress.Parse("2001:db8:63:9::1"))],
            Engine = TestNet.FastEngine,
        });
        await using var mobile = net.StartMobile(policy: new LinkPolicy { Interfaces = ["mv*"] });
        Assert.Equal([LinkAddress.Parse($"{RenumberNet.MobileA}:54325")], mobile.Links.Select(l => l.LocalAddress));

        var v6 = LinkAddress.Parse("[2001:db8:63:1::1]:54325");
        net.Mobile.Ip("addr", "add", "2001:db8:63:1::1/64", "dev", "mv0", "nodad");
        net.Mobile.Ip("-6", "route", "add", "default", "via", "2001:db8:63:1::fe");
        await NetnsSteps.PollAsync(() => mobile.Links.Any(l => l.LocalAddress == v6), "a link for the new IPv6 address", ct);
        Assert.True((await mobile.GetInterfacesAsync(ct)).Single(i => i.Address == v6).IsUp, $"the interface with {v6} is down");

        // Link-local (the veth's fe80::) and loopback addresses got none.
        Assert.DoesNotContain(mobile.Links, l => l.LocalAddress.ToIPAddress().IsIPv6LinkLocal || IPAddress.IsLoopback(l.LocalAddress.ToIPAddress()));
        Assert.Equal(2, mobile.Links.Count);

        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = peer, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = mobile, Service = Svc, AdvisoryAddress = peer.Address() }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);
        Assert.Equal(v6, (await connection.GetFlowInfoAsync(ct))!.LocalAddress);
        await NetnsSteps.ExchangeAsync(connection, accepted, 6, ct);

        // The address goes: its link is retired.
        net.Mobile.Ip("addr", "del", "2001:db8:63:1::1/64", "dev", "mv0");
        await NetnsSteps.PollAsync(async () => !(await mobile.GetInterfacesAsync(ct)).Single(i => i.Address == v6).IsUp, "the IPv6 link to be retired", ct);
    }

    private static List<LinkAddress> RouterTargets(ServalHost router) => NetnsSteps.RouterTargets(router, Svc);
}

/// <summary>
/// Two namespaces joined by one veth pair: "mobile" (<c>mv0</c>, 10.63.1.1/24, default route via 10.63.1.254) and
/// "core" (<c>cv0</c>, both 10.63.1.254/24 and 10.63.2.254/24, so it reaches the mobile host in either subnet; the
/// core hosts' addresses 10.63.9.x are on its loopback). Both namespaces are deleted on disposal.
/// </summary>
internal sealed class RenumberNet : IAsyncDisposable
{
    public const string MobileA = "10.63.1.1";
    public const string MobileB = "10.63.2.1";
    public const string GatewayA = "10.63.1.254";
    public const string GatewayB = "10.63.2.254";
    public const string PeerAddress = "10.63.9.1";
    public const string RouterAddress = "10.63.9.2";
    public const string ClientAddress = "10.63.9.3";

    private RenumberNet(NetNamespace mobile, NetNamespace core)
    {
        Mobile = mobile;
        Core = core;
    }

    public NetNamespace Mobile { get; }

    public NetNamespace Core { get; }

    public static RenumberNet Create()
    {
        var mobile = NetNamespace.Create("rmob");
        NetNamespace? core = null;
        try
        {
            core = NetNamespace.Create("rcore");
            Veth.Connect(mobile, "mv0", $"{MobileA}/24", core, "cv0", $"{GatewayA}/24");
            core.Ip("addr", "add", $"{GatewayB}/24", "dev", "cv0");
            foreach (var a in (string[])[PeerAddress, RouterAddress, ClientAddress])
            {
                core.Ip("addr", "add", $"{a}/32", "dev", "lo");
            }

            mobile.Ip("route", "add", "default", "via", GatewayA);
            return new RenumberNet(mobile, core);
        }
        catch
        {
            mobile.DisposeAsync().AsTask().GetAwaiter().GetResult();
            core?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    /// <summary>A plain host on <see cref="PeerAddress"/> in the core namespace.</summary>
    public ServalHost StartPeer() => NetnsSteps.StartHost(Core, () => new ServalHostOptions
    {
        Name = "peer",
        Links = [new UdpLink(IPAddress.Parse(PeerAddress))],
        Engine = TestNet.FastEngine,
    });

    /// <summary>The mobile host: no explicit link, an IPv4 UDP link policy (or <paramref name="policy"/>).</summary>
    public ServalHost StartMobile(LinkPolicy? policy = null, StreamOptions? stream = null, LinkAddress registerWith = default, LinkAddress defaultRouter = default) =>
        NetnsSteps.StartHost(Mobile, () => new ServalHostOptions
        {
            Name = "mobile",
            LinkPolicies = [policy ?? new LinkPolicy { IPv6 = false }],
            Engine = TestNet.FastEngine,
            Stream = stream ?? StreamOptions.Default,
            RegisterWithRouter = registerWith,
            DefaultRouter = defaultRouter,
            InterfaceMonitorInterval = TimeSpan.FromSeconds(5), // the netlink notifications, not the rescan, must do it
        });

    /// <summary>Replaces the mobile host's address <paramref name="from"/> by <paramref name="to"/> with a new default route, in one <c>ip -batch</c>.</summary>
    public void Renumber(string from, string to, string gateway) => Mobile.ReplaceAddress("mv0", $"{from}/24", $"{to}/24", gateway);

    /// <summary>Adds <paramref name="address"/> back with a default route through <paramref name="gateway"/>.</summary>
    public void AddAddress(string address, string gateway) => Mobile.AddAddressWithDefaultRoute("mv0", $"{address}/24", gateway);

    public async ValueTask DisposeAsync()
    {
        await Mobile.DisposeAsync();
        await Core.DisposeAsync();
    }
}
