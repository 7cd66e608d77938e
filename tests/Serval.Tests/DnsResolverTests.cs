using System.Net;
using Serval.Links;
using Serval.Resolution;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// <see cref="DnsServiceResolver"/> against a real dnsmasq on loopback (skipped when dnsmasq is not installed), and a
/// client host with only a default DELAY rule that connects by name to a service found in DNS (docs/resolution.md).
/// </summary>
[Trait("Tier", "slow")]
public sealed class DnsResolverTests
{
    private const string Zone = "serval.test";

    private static DnsServiceResolver Resolver(Dnsmasq dns, params string[] names) => new(new DnsResolverOptions
    {
        Servers = [dns.EndPoint],
        Zone = Zone,
        Names = names,
        Timeout = TimeSpan.FromMilliseconds(500),
    });

    [Fact]
    public async Task Srv_records_give_the_lowest_priority_targets_with_their_ports_and_weights_and_the_ttl()
    {
        Assert.SkipWhen(Dnsmasq.Binary is null, Dnsmasq.SkipReason);
        await using var dns = await Dnsmasq.StartAsync(Zone, [
            $"srv-host=_serval._udp.echo.{Zone},srv1.{Zone},54325,0,3",
            $"srv-host=_serval._udp.echo.{Zone},srv2.{Zone},54326,0,1",
            $"srv-host=_serval._udp.echo.{Zone},srv3.{Zone},54327,5,1",
            $"host-record=srv1.{Zone},127.0.0.5",
            $"host-record=srv2.{Zone},127.0.0.6,::1",
            $"host-record=srv3.{Zone},127.0.0.7",
        ], localTtl: 7);
        var resolver = Resolver(dns, "echo");
        var echo = ServiceId.FromName("echo");
        Assert.Equal($"echo.{Zone}", resolver.RecordName(echo));

        var answer = await resolver.ResolveAsync(echo, TestNet.Timeout());
        Assert.True(answer.IsFound);
        Assert.Equal(ServicePrefix.Exact(echo), answer.Prefix);
        Assert.Equal(TimeSpan.FromSeconds(7), answer.Ttl);
        Assert.Equal(
            new[] { "127.0.0.5:54325*3", "127.0.0.6:54326*1", "[::1]:54326*1" }.Order(),
            answer.Targets.Select(t => $"{t.Address}*{t.Weight}").Order());
    }

    [Fact]
    public async Task Without_srv_records_the_addresses_of_the_serviceid_name_are_used_on_the_default_port()
    {
        Assert.SkipWhen(Dnsmasq.Binary is null, Dnsmasq.SkipReason);
        var svc = ServiceId.FromName("by.id");
        var name = DnsServiceResolver.RecordName(svc, Zone);
        var hex = svc.ToString();
        Assert.Equal($"{hex[..32]}.{hex[32..]}.{Zone}", name);
        await using var dns = await Dnsmasq.StartAsync(Zone, [$"host-record={name},127.0.0.9"], localTtl: 3);
        var answer = await Resolver(dns).ResolveAsync(svc, TestNet.Timeout());
        var target = Assert.Single(answer.Targets);
        Assert.Equal(new ResolverTarget(LinkAddress.Parse("127.0.0.9:0"), 1), target);
        Assert.Equal(TimeSpan.FromSeconds(3), answer.Ttl);
    }

    [Fact]
    public async Task Unknown_names_and_srv_target_dot_are_negative_answers_and_a_silent_server_is_a_failure()
    {
        Assert.SkipWhen(Dnsmasq.Binary is null, Dnsmasq.SkipReason);
        await using var dns = await Dnsmasq.StartAsync(Zone, [$"srv-host=_serval._udp.gone.{Zone}"]);
        var resolver = Resolver(dns, "gone");
        var none = await resolver.ResolveAsync(ServiceId.FromName("nobody"), TestNet.Timeout());
        Assert.False(none.IsFound);
        Assert.Equal(TimeSpan.FromSeconds(5), none.Ttl); // dnsmasq sends no SOA: the configured NegativeTtl
        var gone = await resolver.ResolveAsync(ServiceId.FromName("gone"), TestNet.Timeout());
        Assert.False(gone.IsFound);

        var silent = new DnsServiceResolver(new DnsResolverOptions
        {
            Servers = [new IPEndPoint(IPAddress.Loopback, 9)], // discard: nothing answers
            Zone = Zone,
            Timeout = TimeSpan.FromMilliseconds(100),
            Attempts = 1,
        });
        await Assert.ThrowsAnyAsync<IOException>(async () => await silent.ResolveAsync(ServiceId.FromName("x"), TestNet.Timeout()));
    }

    [Fact]
    public async Task A_client_with_only_a_default_delay_rule_connects_by_name_to_a_service_found_in_dns()
    {
        Assert.SkipWhen(Dnsmasq.Binary is null, Dnsmasq.SkipReason);
        var ct = TestNet.Timeout(60);
        await using var server = await TestNet.UdpHostAsync("dns-server");
        var byName = ServiceId.FromName("ondemand.echo");
        var byId = ServiceId.FromName("ondemand.by-id");
        await using var dns = await Dnsmasq.StartAsync(Zone, [
            $"srv-host=_serval._udp.ondemand.echo.{Zone},replica.{Zone},{server.Address().Port},0,1",
            $"host-record=replica.{Zone},{server.Address().ToIPAddress()}",
            $"host-record={DnsServiceResolver.RecordName(byId, Zone)},{server.Address().ToIPAddress()}",
        ], localTtl: 30);
        var resolver = Resolver(dns, "ondemand.echo");
        await using var client = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "dns-client",
            Links = [TestNet.UdpLink()],
            Engine = TestNet.FastEngine,
            Resolver = new ServalResolverOptions { Sources = [resolver] },
        }, ct);
        Assert.Contains(client.Admin.GetRules(), r => r.Prefix == ServicePrefix.Default && r.Target.Type == Stack.Services.ServiceTargetType.Delay);

        await using var l1 = await StreamTests.EchoServerAsync(server, byName, ct);
        await using var l2 = await StreamTests.EchoServerAsync(server, byId, ct);
        foreach (var svc in new[] { byName, byId })
        {
            var (sent, received) = await StreamTests.TransferAsync(client, svc, 64 * 1024, ct);
            Assert.Equal(sent, received);
            var rule = Assert.Single(client.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(svc));
            Assert.Equal(server.Address(), rule.Target.Address);
        }

        Assert.Equal(2, client.Counters.DelayReleased);
        Assert.Equal(0, client.Counters.DelayExpired);

        // A name DNS does not know fails the connection at once (NoRoute), and is remembered for a while.
        var e = await Assert.ThrowsAsync<ServalException>(async () => await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = ServiceId.FromName("not.in.dns") }, ct));
        Assert.Equal(ServalError.NoRoute, e.Error);
    }
}
