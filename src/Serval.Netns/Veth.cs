namespace Serval.Netns;

/// <summary>A veth pair joining two namespaces, created directly inside them (no name clash in the root namespace).</summary>
public static class Veth
{
    /// <summary>
    /// Creates a veth pair: <paramref name="deviceA"/> in <paramref name="a"/> with address <paramref name="cidrA"/>,
    /// <paramref name="deviceB"/> in <paramref name="b"/> with <paramref name="cidrB"/>; both up. Device names are per
    /// namespace (at most 15 characters). The pair disappears with either namespace.
    /// </summary>
    public static void Connect(NetNamespace a, string deviceA, string cidrA, NetNamespace b, string deviceB, string cidrB)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        NetNamespace.IpRoot("link", "add", deviceA, "netns", a.Name, "type", "veth", "peer", "name", deviceB, "netns", b.Name);
        a.AddAddress(deviceA, cidrA);
        b.AddAddress(deviceB, cidrB);
    }
}
