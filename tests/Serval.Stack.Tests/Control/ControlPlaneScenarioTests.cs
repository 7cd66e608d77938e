using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>Hosts register their services with a service router, in the simulator (DESIGN.md, "Control plane"; issue 7).</summary>
public sealed class ControlPlaneScenarioTests
{
    [Fact]
    public void A_bound_service_becomes_reachable_through_the_router_with_no_manual_rule()
    {
        var t = Build(1, replicas: 3);
        var listeners = t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(20));

        Assert.Equal(Names(t.ReplicaAddrs), Names(t.RouterTargets(Web)));
        Assert.Equal(3, t.RouterController.RegistrationCount);
        Assert.All(t.ReplicaControllers, c => Assert.Equal(1, Assert.Single(c.GetRegistrations()).AcknowledgedBy));

        var accepted = t.ConnectAll(Web, listeners, 300, TimeSpan.FromSeconds(10));
        Assert.Equal(300, accepted.Sum());
        Assert.All(accepted, n => Assert.InRange(n, 60, 140));
    }

    private static string[] Names(IEnumerable<LinkAddress> addresses) => [.. addresses.Select(a => a.ToString()).Order(StringComparer.Ordinal)];
}
