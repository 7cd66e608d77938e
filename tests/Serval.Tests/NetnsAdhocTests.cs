using System.Net;
using System.Security.Cryptography;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Ad hoc discovery on real links with zero configuration (docs/runtime.md, "Broadcast and discovery";
/// docs/control-protocol.md §12): hosts in network namespaces on one bridge (<see cref="BridgeLan"/>), each with one
/// UDP link and default options — no route, no rule, no router configured. Needs root; skipped otherwise.
/// </summary>
[Trait("Tier", "netns")]
public sealed class NetnsAdhocTests(ITestOutputHelper output)
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.netns.adhoc.echo");

    private static void Require() => Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);

    /// <summary>A host with default options on one UDP link at <paramref name="address"/>, started inside <paramref name="ns"/>.</summary>
    private static ServalHost Start(NetNamespace ns, string name, IPAddress address, bool router = false) =>
        ns.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = name,
            Links = [new UdpLink(address)],
            Engine = TestNet.FastEngine with { Mode = router ? EngineMode.ServiceRouter : EngineMode.Host },
            RouterControl = router ? new RouterControllerOptions() : null,
        }).AsTask().GetAwaiter().GetResult());

    [Fact]
    public async Task Hosts_connect_by_service_id_with_no_configuration_then_find_a_router_and_register_with_it()
    {
        Require();
        var ct = TestNet.Timeout(90);
        await using var lan = BridgeLan.Create("adh", 93, 4);
        await using var server = Start(lan.Hosts[0], "adhoc-server", lan.Address(0));
        await using var client = Start(lan.Hosts[1], "adhoc-client", lan.Address(1));

        // The links learned the subnet's broadcast address from the kernel; the only rules are the broadcast default
        // and the discovery socket's.
        Assert.Equal(LinkAddress.Parse("10.93.0.255:54325"), client.Links[0].BroadcastAddress);
        var rules = client.Admin.GetRules();
        var fallback = Assert.Single(rules, r => r.Prefix == ServicePrefix.Default);
        Assert.Equal(ServiceTarget.Forward(LinkAddress.Parse("10.93.0.255:54325"), 1), fallback.Target);
        Assert.Equal(ServiceTable.BroadcastPriority, fallback.Priority);
        Assert.All(rules.Where(r => r.Prefix != ServicePrefix.Default), r => Assert.Equal(ServicePrefix.Exact(ControlProtocol.AdvertiseServiceId), r.Prefix));

        await using (var listener = await StreamTests.EchoServerAsync(server, Echo, ct))
        {
            // Phase 1: no router anywhere. The SYN is broadcast; the server answers.
            var (sent, received) = await StreamTests.TransferAsync(client, Echo, 200_000, ct);
            Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
            Assert.Empty((await server.Admin.GetRouterDiscoveryAsync(ct))!.Routers);

            // Phase 2: a router appears. Its advertisement makes the server register Echo with it.
            await using var router = Start(lan.Hosts[3], "adhoc-router", lan.Address(3), router: true);
            var started = System.Diagnostics.Stopwatch.StartNew();
            Assert.True(
                await TestNet.EventuallyAsync(async () => (await router.Admin.GetRouterSnapshotAsync(ct)).Registrations.Any(r => r.Prefix == ServicePrefix.Exact(Echo) && r.Host.SameAddress(LinkAddress.FromIPAddress(lan.Address(0)))), seconds: 10),
                "the server did not register with the router it heard");
            output.WriteLine($"registered with the discovered router {started.ElapsedMilliseconds} ms after it started");
            var snapshot = await router.Admin.GetRouterSnapshotAsync(ct);
            Assert.Equal([ServicePrefix.Exact(Echo)], snapshot.Registrations.Select(r => r.Prefix).ToList());
            Assert.True(snapshot.AdvertiserCounters!.AdvertisementsSent >= 1, $"AdvertisementsSent {snapshot.AdvertiserCounters!.AdvertisementsSent}");

            // A third host on the segment: it solicits, hears the router, and reaches the service through it.
            await using var third = Start(lan.Hosts[2], "adhoc-third", lan.Address(2));
            Assert.True(
                await TestNet.EventuallyAsync(async () => (await third.Admin.GetRouterDiscoveryAsync(ct))!.Routers.Any(r => r.Endpoint.Address == LinkAddress.FromIPAddress(lan.Address(3)).WithPort(ServalInfo.DefaultUdpPort)), seconds: 10),
                "the third host did not find the router");
            var forwarded = router.Counters.Forwarded;
            (sent, received) = await StreamTests.TransferAsync(third, Echo, 300_000, ct);
            Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
            Assert.True(router.Counters.Forwarded > forwarded, "the third host's SYN did not go through the router");
            Assert.Equal(0, server.Counters.BadTransportChecksum);
            Assert.Equal(0, client.Counters.BadTransportChecksum);
        }
    }

    [Fact]
    public async Task Over_ipv6_hosts_connect_by_service_id_through_the_discovery_group()
    {
        Require();
        var ct = TestNet.Timeout(60);
        await using var lan = BridgeLan.Create("adh6", 94, 2);
        await using var server = Start(lan.Hosts[0], "adhoc6-server", lan.Address6(0));
        await using var client = Start(lan.Hosts[1], "adhoc6-client", lan.Address6(1));
        Assert.Equal(LinkAddress.FromIPAddress(ServalInfo.DiscoveryGroup, ServalInfo.DefaultUdpPort), client.Links[0].BroadcastAddress);
        await using var listener = await StreamTests.EchoServerAsync(server, Echo, ct);
        var (sent, received) = await StreamTests.TransferAsync(client, Echo, 200_000, ct);
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
        Assert.Equal(0, server.Counters.BadTransportChecksum);
    }

    [Fact]
    public async Task With_two_servers_the_first_syn_ack_wins_and_the_other_is_reset()
    {
        Require();
        var ct = TestNet.Timeout(60);
        await using var lan = BridgeLan.Create("adh2", 95, 3);
        await using var a = Start(lan.Hosts[0], "adhoc-a", lan.Address(0));
        await using var b = Start(lan.Hosts[1], "adhoc-b", lan.Address(1));
        await using var client = Start(lan.Hosts[2], "adhoc-c", lan.Address(2));
        await using var la = await StreamTests.EchoServerAsync(a, Echo, ct);
        await using var lb = await StreamTests.EchoServerAsync(b, Echo, ct);
        for (var i = 0; i < 5; i++)
        {
            var (sent, received) = await StreamTests.TransferAsync(client, Echo, 20_000, ct);
            Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
        }

        // Every connect was answered by both servers: one SYN-ACK won, the other was refused with a reset, and no
        // half-open flow stays behind on either server.
        Assert.True(client.Counters.ResetsSent >= 5, $"resets sent: {client.Counters.ResetsSent}");
        Assert.True(await TestNet.EventuallyAsync(async () => await a.GetFlowCountAsync(ct) + await b.GetFlowCountAsync(ct) == 0, seconds: 15), "flows left on the servers");
    }

    [Fact]
    public async Task Loopback_links_have_no_broadcast_address_and_run_no_discovery()
    {
        var ct = TestNet.Timeout(20);
        await using var host = await TestNet.UdpHostAsync("adhoc-lo");
        Assert.True(host.Links[0].BroadcastAddress.IsNone);
        Assert.DoesNotContain(host.Admin.GetRules(), r => r.Prefix == ServicePrefix.Default);
        var discovery = await host.Admin.GetRouterDiscoveryAsync(ct);
        Assert.NotNull(discovery);
        Assert.False(discovery.Listening);
    }
}
