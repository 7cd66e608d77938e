using Serval.Daemon;
using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval.Cli.Tests;

/// <summary>servald's service names: the control plane's own services labelled, names learnt only when they hash to the ID.</summary>
public sealed class ServiceNamesTests
{
    [Fact]
    public void The_control_plane_services_are_labelled()
    {
        var names = new ServiceNames();
        Assert.Equal("serval.router (control plane)", names.Find(ControlProtocol.RouterServiceId));
        Assert.Equal("serval.router.advertise (control plane)", names.Find(ServicePrefix.Exact(ControlProtocol.AdvertiseServiceId)));
        Assert.Equal("serval.router.solicit (control plane)", names.Find(ControlProtocol.SolicitServiceId));
        Assert.Null(names.Find(new ServicePrefix(ControlProtocol.RouterServiceId, 16)));
    }

    [Fact]
    public void A_name_is_learnt_only_for_the_ID_it_hashes_to()
    {
        var names = new ServiceNames();
        Assert.False(names.Learn(ServiceId.FromName("a"), "b"));
        Assert.Null(names.Find(ServiceId.FromName("a")));
        Assert.True(names.Learn(ServiceId.FromName("shop.api"), "shop.api"));
        Assert.Equal("shop.api", names.Find(ServiceId.FromName("shop.api")));
    }

    [Fact]
    public void Servalctl_shows_a_known_name_with_a_short_id_and_an_unknown_one_as_before()
    {
        var id = ServiceId.FromName("shop.api");
        Assert.Equal($"shop.api ({id.ToString()[..8]}…)", ServiceDisplay.Show(ServicePrefix.Exact(id), "shop.api"));
        Assert.Equal(ServiceIdArgument.Format(ServicePrefix.Exact(id)), ServiceDisplay.Show(ServicePrefix.Exact(id), null));
        Assert.Equal(id.ToString(), ServiceDisplay.Show(id.ToString(), null));
    }
}
