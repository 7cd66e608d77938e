using Serval.Resolution;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// A service router publishes its registrations in DNS with RFC 2136 updates (docs/resolution.md, "Publishing
/// registrations"), tested against a real Knot DNS server (skipped when knotd is not installed); a client that only
/// resolves through DNS then reaches the registered replica.
/// </summary>
[Trait("Tier", "slow")]
public sealed class RegistrationDnsTests
{
    private const string Zone = "serval.test";

    [Fact]
    public async Task A_registration_appears_in_dns_a_dns_client_reaches_the_replica_and_the_record_goes_with_the_registration()
    {
        Assert.SkipWhen(Knot.Binary is null, Knot.SkipReason);
        var ct = TestNet.Timeout(90);
        await using var knot = await Knot.StartAsync(Zone);
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "dns-router",
            Links = [TestNet.UdpLink()],
            Engine = TestNet.FastEngine with { Mode = EngineMode.ServiceRouter },
            RouterControl = RouterControllerOptions.Default,
            PublishRegistrations = new DnsUpdateOptions { Server = knot.EndPoint, Zone = Zone, RecordTtl = TimeSpan.FromSeconds(2) },
        }, ct);
        await using var replica = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "dns-replica",
            Links = [TestNet.UdpLink()],
            Engine = TestNet.FastEngine,
            RegisterWithRouter = router.Address(),
            Registration = HostControllerOptions.Default with { Weights = new Dictionary<ServicePrefix, uint> { [ServicePrefix.Exact(ServiceId.FromName("dns.published"))] = 7 } },
        }, ct);
        var svc = ServiceId.FromName("dns.published");
        var dns = new DnsServiceResolver(new DnsResolverOptions { Servers = [knot.EndPoint], Zone = Zone, Timeout = TimeSpan.FromMilliseconds(500) });
        var listener = await StreamTests.EchoServerAsync(replica, svc, ct);

        // The router's rule becomes an SRV record (weight 7, the replica's port) and the replica's A record.
        ResolverAnswer? answer = null;
        Assert.True(
            await TestNet.EventuallyAsync(async () => (answer = await dns.ResolveAsync(svc, ct)).IsFound),
            $"not published; knot said:\n{knot.Output}");
        var target = Assert.Single(answer!.Targets);
        Assert.Equal(new ResolverTarget(replica.Address(), 7), target);
        Assert.Equal(TimeSpan.FromSeconds(2), answer.Ttl);

        // A client with no route and no router, only a DNS resolver, reaches the replica directly.
        await using var client = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "dns-only-client",
            Links = [TestNet.UdpLink()],
            Engine = TestNet.FastEngine,
            Resolver = new ServalResolverOptions { Sources = [dns] },
        }, ct);
        var (sent, received) = await StreamTests.TransferAsync(client, svc, 64 * 1024, ct);
        Assert.Equal(sent, received);
        Assert.Equal(0, router.Counters.Forwarded);

        // The listener closes: the registration goes, and so do its records.
        await listener.DisposeAsync();
        Assert.True(await TestNet.EventuallyAsync(async () => !(await dns.ResolveAsync(svc, ct)).IsFound), "the SRV record outlived the registration");
        var hostRecord = new DnsServiceResolver(new DnsResolverOptions { Servers = [knot.EndPoint], Zone = Zone, Names = [Serval.Runtime.RegistrationPublisher.HostName(replica.Address(), Zone).Replace("." + Zone, string.Empty, StringComparison.Ordinal)] });
        Assert.True(await TestNet.EventuallyAsync(async () => !(await hostRecord.ResolveAsync(ServiceId.FromName(hostRecord.Options.Names[0]), ct)).IsFound), "the host's A record outlived its last registration");
        Assert.Equal(0, router.Driver.Publisher!.Failures);
    }
}
