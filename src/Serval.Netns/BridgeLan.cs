using System.Net;

namespace Serval.Netns;

/// <summary>
/// One Ethernet segment: a bridge in a namespace of its own and any number of host namespaces, each with one veth
/// (<c>e0</c>) plugged into the bridge, with IPv4 address <c>10.&lt;subnet&gt;.0.&lt;n&gt;/24</c> (n = 1, 2, …) and IPv6
/// address <c>fd00:&lt;subnet&gt;::&lt;n&gt;/64</c> (without duplicate address detection, so usable at once). No
/// route, no router: what one host broadcasts, every other host receives. Multicast snooping is off, so the bridge
/// floods multicast like broadcast. Everything is deleted on disposal, also when creation fails half way.
/// </summary>
public sealed class BridgeLan : IAsyncDisposable
{
    private readonly List<NetNamespace> _hosts = [];
    private readonly int _subnet;

    private BridgeLan(NetNamespace bridge, int subnet)
    {
        Bridge = bridge;
        _subnet = subnet;
    }

    /// <summary>The namespace holding the bridge <c>br0</c>.</summary>
    public NetNamespace Bridge { get; }

    /// <summary>The host namespaces, in creation order.</summary>
    public IReadOnlyList<NetNamespace> Hosts => _hosts;

    /// <summary>Creates the bridge and <paramref name="hosts"/> host namespaces on subnet 10.<paramref name="subnet"/>.0.0/24.</summary>
    /// <param name="tag">A short tag for the namespace names (letters and digits, at most 6 characters).</param>
    /// <param name="subnet">The second octet of the IPv4 subnet (1-254) and the second group of the IPv6 prefix.</param>
    /// <param name="hosts">How many hosts (1-200).</param>
    public static BridgeLan Create(string tag, int subnet, int hosts)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(subnet, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(subnet, 254);
        ArgumentOutOfRangeException.ThrowIfLessThan(hosts, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(hosts, 200);
        var bridge = NetNamespace.Create($"{tag}br");
        var lan = new BridgeLan(bridge, subnet);
        try
        {
            bridge.Ip("link", "add", "br0", "type", "bridge", "mcast_snooping", "0");
            bridge.SetLink("br0", true);
            for (var i = 0; i < hosts; i++)
            {
                lan.AddHost(tag);
            }

            return lan;
        }
        catch
        {
            lan.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    /// <summary>Host <paramref name="index"/>'s IPv4 address (10.subnet.0.index+1).</summary>
    public IPAddress Address(int index) => IPAddress.Parse($"10.{_subnet}.0.{index + 1}");

    /// <summary>Host <paramref name="index"/>'s IPv6 address (fd00:subnet::index+1).</summary>
    public IPAddress Address6(int index) => IPAddress.Parse($"fd00:{_subnet}::{index + 1}");

    /// <summary>Adds one more host namespace plugged into the bridge; returns it.</summary>
    public NetNamespace AddHost(string tag)
    {
        var i = _hosts.Count;
        var ns = NetNamespace.Create($"{tag}{i}");
        _hosts.Add(ns);
        var port = $"p{i}";
        NetNamespace.IpRoot("link", "add", "e0", "netns", ns.Name, "type", "veth", "peer", "name", port, "netns", Bridge.Name);
        Bridge.Ip("link", "set", port, "master", "br0");
        Bridge.SetLink(port, true);
        ns.Ip("addr", "add", $"{Address(i)}/24", "dev", "e0");
        ns.Ip("-6", "addr", "add", $"{Address6(i)}/64", "dev", "e0", "nodad");
        ns.SetLink("e0", true);
        return ns;
    }

    /// <summary>Deletes every host namespace and the bridge's.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var ns in _hosts)
        {
            await ns.DisposeAsync().ConfigureAwait(false);
        }

        await Bridge.DisposeAsync().ConfigureAwait(false);
    }
}
