using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>The control plane over real UDP sockets: services register with a router when they bind.</summary>
public sealed class RegistrationTests
{
    private static readonly ServiceId Svc = ServiceId.FromName("test.registered");

    [Fact]
    public async Task A_bound_service_becomes_reachable_through_the_router_with_no_manual_rule_and_leaves_on_close()
    {
        var ct = TestNet.Timeout(60);
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "router",
            Links = [TestNet.UdpLink()],
            Engine = TestNet.FastEngine with { Mode = EngineMode.ServiceRouter },
            RouterControl = RouterControllerOptions.Default,
        }, ct);
        await using var replica = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "replica",
            Links = [TestNet.UdpLink()],
            Engine = TestNet.FastEngine,
            RegisterWithRouter = router.Address(),
        }, ct);
        await using var client = await TestNet.UdpHostAsync("client", defaultRouter: router.Address());

        var listener = await StreamTests.EchoServerAsync(replica, Svc, ct);
        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(router.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(Svc)))), "no registration at the router");

        var (sent, received) = await StreamTests.TransferAsync(client, Svc, 100_000, ct);
        Assert.Equal(sent, received);

        await listener.DisposeAsync();
        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(!router.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(Svc))), 2), "the rule outlived the listener");
    }
}
