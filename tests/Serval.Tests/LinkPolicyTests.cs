using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Serval.Links;
using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Link policies (docs/runtime.md, "Link policies"): which addresses they match, their validation and the host
/// options' checks, and links created at start for the loopback interface (no root needed; the renumbering itself is
/// in <see cref="NetnsRenumberingTests"/>).
/// </summary>
public sealed class LinkPolicyTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.policy.echo");

    [Theory]
    [InlineData("eth0", "10.0.0.1", false, true)]
    [InlineData("eth0", "2001:db8::1", false, true)]
    [InlineData("eth0", "::ffff:10.0.0.1", false, true)]
    [InlineData("lo", "127.0.0.1", true, false)]
    [InlineData("lo", "::1", true, false)]
    [InlineData("lo", "10.9.9.9", true, false)]       // any address of a loopback interface
    [InlineData("eth0", "127.0.0.2", false, false)]   // a loopback address anywhere
    [InlineData("eth0", "fe80::1", false, false)]
    [InlineData("eth0", "169.254.10.1", false, false)]
    [InlineData("eth0", "224.0.0.1", false, false)]
    [InlineData("eth0", "ff02::1", false, false)]
    [InlineData("eth0", "0.0.0.0", false, false)]
    public void The_default_policy_takes_global_addresses_of_every_interface(string name, string address, bool loopback, bool expected) =>
        Assert.Equal(expected, LinkPolicy.Default.Matches(name, IPAddress.Parse(address), loopback));

    [Fact]
    public void Families_link_local_loopback_and_interface_names_are_chosen_by_the_policy()
    {
        var v4 = IPAddress.Parse("10.0.0.1");
        var v6 = IPAddress.Parse("2001:db8::1");
        Assert.False(new LinkPolicy { IPv4 = false }.Matches("eth0", v4));
        Assert.True(new LinkPolicy { IPv4 = false }.Matches("eth0", v6));
        Assert.False(new LinkPolicy { IPv6 = false }.Matches("eth0", v6));
        Assert.True(new LinkPolicy { IncludeLinkLocal = true }.Matches("eth0", IPAddress.Parse("fe80::1")));
        Assert.True(new LinkPolicy { IncludeLinkLocal = true }.Matches("eth0", IPAddress.Parse("169.254.1.2")));
        Assert.True(new LinkPolicy { IncludeLoopback = true }.Matches("lo", IPAddress.Loopback, loopbackInterface: true));
        Assert.True(new LinkPolicy { IncludeLoopback = true }.Matches("lo", IPAddress.IPv6Loopback, loopbackInterface: true));

        var named = new LinkPolicy { Interfaces = ["eth0", "wl*"] };
        Assert.True(named.Matches("eth0", v4));
        Assert.False(named.Matches("eth1", v4));
        Assert.False(named.Matches("eth00", v4));
        Assert.True(named.Matches("wlan0", v4));
        Assert.True(named.Matches("wl", v4));
        Assert.False(named.Matches("w", v4));
        Assert.False(named.Matches("xwlan0", v4));
    }

    [Fact]
    public void Invalid_policies_and_options_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new LinkPolicy { Port = 70_000 }.Validate());
        Assert.Throws<ArgumentException>(() => new LinkPolicy { Port = -1 }.Validate());
        Assert.Throws<ArgumentException>(() => new LinkPolicy { IPv4 = false, IPv6 = false }.Validate());
        Assert.Throws<ArgumentException>(() => new LinkPolicy { Interfaces = ["eth0", " "] }.Validate());
        Assert.Throws<ArgumentException>(() => new LinkPolicy { Kind = (LinkKind)7 }.Validate());
        Assert.Throws<ArgumentException>(() => new LinkPolicy { UdpOptions = new UdpLinkOptions { Mtu = 100 } }.Validate());
        new LinkPolicy { Kind = LinkKind.RawIp, Interfaces = ["eth*"] }.Validate();

        var options = new ServalHostOptions { LinkPolicies = [LinkPolicy.Default] };
        options.Validate();
        Assert.Throws<ArgumentException>(() => (options with { MonitorInterfaces = false }).Validate());
        Assert.Throws<ArgumentException>(() => (options with { LinkPolicies = [null!] }).Validate());

        // The routers need a family a link or a policy can have; with policies the interface index follows the links.
        (options with { DefaultRouter = LinkAddress.Parse("10.0.0.254") }).Validate();
        (options with { RegisterWithRouter = LinkAddress.Parse("[2001:db8::fe]:54325") }).Validate();
        (options with { Registration = new HostControllerOptions { Routers = [new RouterEndpoint(LinkAddress.Parse("10.0.0.254:54325"), 7)] } }).Validate();
        var v4Only = options with { LinkPolicies = [new LinkPolicy { IPv6 = false }] };
        Assert.Throws<ArgumentException>(() => (v4Only with { DefaultRouter = LinkAddress.Parse("[2001:db8::fe]:54325") }).Validate());
        Assert.Throws<ArgumentException>(() => (v4Only with { RegisterWithRouter = LinkAddress.Parse("[2001:db8::fe]:54325") }).Validate());
        Assert.Throws<ArgumentException>(() => new ServalHostOptions { DefaultRouter = LinkAddress.Parse("10.0.0.254") }.Validate());
    }

    [Fact]
    public async Task A_policy_creates_links_at_start_for_the_addresses_it_matches_and_they_carry_connections()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && Environment.Is64BitProcess, "link policies need 64-bit Linux (rtnetlink)");
        var ct = TestNet.Timeout(30);
        var lo = NetworkInterface.GetAllNetworkInterfaces().Single(i => i.NetworkInterfaceType == NetworkInterfaceType.Loopback);
        var expected = lo.GetIPProperties().UnicastAddresses.Select(a => a.Address).Where(a => a.AddressFamily == AddressFamily.InterNetwork).Order().ToList();
        Assert.NotEmpty(expected);

        // An explicit link first; the policy (IPv4 of the loopback interface, a free port each) comes after it.
        await using var host = await ServalHost.StartAsync(
            new ServalHostOptions
            {
                Name = "policy",
                Links = [TestNet.UdpLink()],
                LinkPolicies = [new LinkPolicy { IPv6 = false, IncludeLoopback = true, Interfaces = [lo.Name], Port = 0 }],
                Engine = TestNet.FastEngine,
            },
            ct);
        Assert.Equal(1 + expected.Count, host.Links.Count);
        Assert.Equal(expected, host.Links.Skip(1).Select(l => l.LocalAddress.ToIPAddress()).Order());
        Assert.All(host.Links, l => Assert.NotEqual(0, l.LocalAddress.Port));
        Assert.All(await host.GetInterfacesAsync(ct), i => Assert.True(i.IsUp));

        // Another host reaches the service through a policy link.
        await using var other = await TestNet.UdpHostAsync("other");
        await using var listener = await StreamTests.EchoServerAsync(host, Echo, ct);
        var (sent, received) = await StreamTests.TransferAsync(other, Echo, 100_000, ct, host.Links[1].LocalAddress);
        Assert.Equal(sent, received);

        // Without loopback, or on other interfaces only, the policy takes nothing here; an address that already has a
        // link of that kind and port gets no second one.
        await using var none = await ServalHost.StartAsync(new ServalHostOptions { Name = "none", LinkPolicies = [new LinkPolicy { Interfaces = [lo.Name] }] }, ct);
        Assert.Empty(none.Links);
        var taken = new UdpLink(expected[0], 0);
        await using var explicitFirst = await ServalHost.StartAsync(
            new ServalHostOptions
            {
                Name = "explicit",
                Links = [taken],
                LinkPolicies = [new LinkPolicy { IPv6 = false, IncludeLoopback = true, Interfaces = [lo.Name], Port = taken.LocalAddress.Port }],
            },
            ct);
        Assert.Equal(expected.Count, explicitFirst.Links.Count);
        Assert.Single(explicitFirst.Links, l => l.LocalAddress == taken.LocalAddress);
    }
}
