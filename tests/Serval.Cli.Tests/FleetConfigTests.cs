using Serval.Daemon;
using Serval.Stack;
using Serval.Stack.ControlPlane;

namespace Serval.Cli.Tests;

/// <summary><c>Serval:Router:Fleet</c> and <c>Serval:Registration:RouterSelection</c> (docs/router-fleet.md, "Configuration").</summary>
public sealed class FleetConfigTests
{
    private static DaemonOptions Router(FleetSettings fleet, string name = "r1") => new()
    {
        Name = name,
        Mode = EngineMode.ServiceRouter,
        Udp = [new UdpEndpoint { Address = "127.0.0.1", Port = 0 }],
        Router = new RouterSettings { Fleet = fleet },
    };

    [Fact]
    public void A_fleet_router_gets_its_endpoints_root_and_name()
    {
        var plan = DaemonPlan.Create(Router(new FleetSettings { Endpoints = ["http://10.0.9.1:2379", "http://10.0.9.2:2379"], Root = "/f1/" }));
        Assert.NotNull(plan.Fleet);
        Assert.Equal(["http://10.0.9.1:2379/", "http://10.0.9.2:2379/"], plan.Fleet!.Endpoints.Select(u => u.ToString()));
        Assert.Equal("/f1/", plan.Fleet.Root);
        Assert.Equal("r1", plan.Router!.FleetName);
        Assert.Equal("edge-a", DaemonPlan.Create(Router(new FleetSettings { Endpoints = ["http://10.0.9.1:2379"], Name = "edge-a" })).Router!.FleetName);
    }

    [Fact]
    public void Without_a_fleet_section_the_router_keeps_its_registrations_in_memory()
    {
        var plan = DaemonPlan.Create(new DaemonOptions { Mode = EngineMode.ServiceRouter, Udp = [new UdpEndpoint { Address = "127.0.0.1", Port = 0 }] });
        Assert.Null(plan.Fleet);
        Assert.Null(plan.Router!.FleetName);
    }

    [Theory]
    [InlineData("no-endpoint", "Endpoints lists no etcd member")]
    [InlineData("10.0.9.1:2379", "is not an http:// or https:// URL")]
    [InlineData("http://10.0.9.1:2379/v3", "is not an http:// or https:// URL")]
    public void Bad_endpoints_are_start_up_errors(string endpoint, string message)
    {
        var fleet = new FleetSettings { Endpoints = endpoint == "no-endpoint" ? [] : [endpoint] };
        var e = Assert.Throws<DaemonException>(() => DaemonPlan.Create(Router(fleet)));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tls_files_credentials_and_the_root_are_checked()
    {
        static string Fails(FleetSettings f) => Assert.Throws<DaemonException>(() => DaemonPlan.Create(Router(f))).Message;
        Assert.Contains("need https:// endpoints", Fails(new FleetSettings { Endpoints = ["http://10.0.9.1:2379"], CaFile = "/etc/hostname" }), StringComparison.Ordinal);
        Assert.Contains("CertFile and KeyFile", Fails(new FleetSettings { Endpoints = ["https://10.0.9.1:2379"], CertFile = "/etc/hostname" }), StringComparison.Ordinal);
        Assert.Contains("does not exist", Fails(new FleetSettings { Endpoints = ["https://10.0.9.1:2379"], CaFile = "/nonexistent/ca.pem" }), StringComparison.Ordinal);
        Assert.Contains("Username and Password", Fails(new FleetSettings { Endpoints = ["http://10.0.9.1:2379"], Username = "serval" }), StringComparison.Ordinal);
        Assert.Contains("Root must start and end with '/'", Fails(new FleetSettings { Endpoints = ["http://10.0.9.1:2379"], Root = "serval" }), StringComparison.Ordinal);
        Assert.Contains("MaxTxnOps", Fails(new FleetSettings { Endpoints = ["http://10.0.9.1:2379"], MaxTxnOps = 0 }), StringComparison.Ordinal);
    }

    [Fact]
    public void A_host_registers_with_one_router_of_a_fleet_when_asked()
    {
        var plan = DaemonPlan.Create(new DaemonOptions
        {
            Udp = [new UdpEndpoint { Address = "127.0.0.1", Port = 0 }],
            Registration = new RegistrationSettings { Routers = ["127.0.0.2", "127.0.0.3"], RouterSelection = RouterSelection.One },
        });
        Assert.Equal(RouterSelection.One, plan.Registration!.RouterSelection);
        Assert.Equal(2, plan.Registration.Routers.Count);
    }
}
