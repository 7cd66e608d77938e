using Serval.Stack.ControlPlane;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>An edge router registers its registrations, aggregated, with a core router (docs/design.md, "Control plane": hierarchy, prefix aggregation).</summary>
public sealed class HierarchyTests
{
    private static readonly ServiceId CoreId = ServiceId.FromName("serval.router.core");
    private static readonly LinkAddress CoreAddr = LinkAddress.Parse("10.0.0.250");
    private static readonly ServicePrefix Apps = new(ServiceId.FromName("apps"), 16);
    private static readonly ServiceId Mail = ServiceId.FromName(Apps, "mail");
    private static readonly ServiceId Chat = ServiceId.FromName(Apps, "chat");

    [Fact]
    public void An_edge_router_exports_the_aggregate_of_its_registrations_and_clients_of_the_core_reach_them()
    {
        // Core router first (the edge registers with it), then the edge router with an upstream and one aggregate.
        var t = Build(31, replicas: 0, router: o => o with
        {
            Upstream = new HostControllerOptions { Routers = [new RouterEndpoint(CoreAddr, 1, CoreId)] },
            UpstreamAggregates = [Apps],
        });
        var coreHost = t.Net.AddHost("core", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
        coreHost.Attach(t.Lan, CoreAddr);
        var core = new ControlNode(t.Net, coreHost);
        var coreController = core.Add(new RouterController(coreHost.Engine, new RouterControllerOptions { ServiceId = CoreId }, new SeededRandomSource(5)));
        core.Do(() => coreController.Start(core.Now));

        // The client talks to the core only.
        var (client, _, _) = t.AddHost("far-client", LinkAddress.Parse("10.0.0.2"), new HostControllerOptions { Routers = [new RouterEndpoint(CoreAddr, 1, CoreId)] });

        t.AddReplica();
        t.AddReplica();
        var mail = t.ListenAll(Mail);
        var chat = Listen(t.Replicas[0], Chat);
        Listen(t.Replicas[1], Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1));

        // Edge: one rule per registration. Core: the aggregate (weight 3 = three registrations) and the uncovered prefix, both toward the edge.
        Assert.Equal(2, t.RouterTargets(Mail).Count);
        Assert.True(coreHost.Engine.Services.TryGetExact(Apps, out var aggregate));
        var rule = Assert.Single(aggregate.Rules);
        Assert.Equal(RouterAddr, rule.Target.Address);
        Assert.Equal(3u, rule.Weight);
        Assert.True(coreHost.Engine.Services.TryGetExact(ServicePrefix.Exact(Web), out var exact));
        Assert.Equal(RouterAddr, Assert.Single(exact.Rules).Target.Address);
        Assert.False(coreHost.Engine.Services.TryGetExact(ServicePrefix.Exact(Mail), out _));
        Assert.Equal(2, coreController.RegistrationCount);
        Assert.Equal(2, t.RouterController.GetUpstreamRegistrations().Count);

        // A client of the core reaches services behind the edge: core → edge → replica.
        var conns = Enumerable.Range(0, 50).Select(_ => client.Do(() => client.Host.Connect(Chat))).ToList();
        Assert.True(t.Net.RunUntil(() => conns.All(c => client.Host.IsConnected(c)), TimeSpan.FromSeconds(5)));
        Assert.Equal(50, coreHost.Engine.Counters.Forwarded);

        // Draining and closing shrink the aggregate; the last registration under it withdraws it upstream at once.
        t.Replicas[1].Do(() => t.ReplicaControllers[1].SetDraining(ServicePrefix.Exact(Mail), true, t.Net.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.True(coreHost.Engine.Services.TryGetExact(Apps, out aggregate));
        Assert.Equal(2u, Assert.Single(aggregate.Rules).Weight);
        t.Replicas[0].Do(() => t.Replicas[0].Host.Engine.Close(mail[0], t.Net.Now));
        t.Replicas[0].Do(() => t.Replicas[0].Host.Engine.Close(chat, t.Net.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.False(coreHost.Engine.Services.TryGetExact(Apps, out _));
        Assert.True(coreHost.Engine.Services.TryGetExact(ServicePrefix.Exact(Web), out _));

        // The core keeps the edge's exports alive with refreshes.
        t.Net.RunFor(TimeSpan.FromSeconds(5));
        Assert.Equal(1, coreController.RegistrationCount);
        Assert.Equal(0, coreController.Counters.Expired);
        Assert.Equal(0, t.RouterController.UpstreamCounters!.Retransmissions);
    }

    [Fact]
    public void An_upstream_router_must_listen_on_another_service_id()
    {
        var options = new RouterControllerOptions { Upstream = new HostControllerOptions { Routers = [new RouterEndpoint(CoreAddr, 1)] } };
        Assert.Throws<ArgumentException>(options.Validate);
    }
}
