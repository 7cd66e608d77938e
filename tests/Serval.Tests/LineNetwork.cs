using System.Net;
using Serval.Netns;

namespace Serval.Tests;

/// <summary>
/// Three network namespaces in a line, the router namespace in the middle, each end in its own subnet (IPv4 and IPv6):
/// <code>
///   client  10.92.1.1/24   fd92:1::1/64 ── veth ── 10.92.1.254 fd92:1::fe ┐
///                                                                        router (IPv4 and IPv6 forwarding on)
///   server  10.92.2.1/24   fd92:2::1/64 ── veth ── 10.92.2.254 fd92:2::fe ┘
/// </code>
/// The client and the server have their default routes through the router namespace, so after a service router there
/// has forwarded the first packet everything goes directly between them, IP-routed by its kernel. Strict reverse-path
/// filtering (<c>rp_filter</c> 1) is on in all three namespaces, as on many distributions: the forwarded SYN carries the
/// client's IP source, and the server's kernel accepts it only because it arrives on the interface the server's route
/// to the client leaves through (the default route here). IPv6 addresses skip duplicate address detection so they are
/// usable at once. The namespaces are deleted on disposal, also when creation fails half way.
/// </summary>
internal sealed class LineNetwork : IAsyncDisposable
{
    private readonly List<NetNamespace> _all = [];

    private LineNetwork()
    {
    }

    public NetNamespace Client { get; private set; } = null!;

    public NetNamespace Router { get; private set; } = null!;

    public NetNamespace Server { get; private set; } = null!;

    public static IPAddress ClientAddress { get; } = IPAddress.Parse("10.92.1.1");

    /// <summary>The router's address on the client's link (index 0) and on the server's (1).</summary>
    public static IPAddress[] RouterAddresses { get; } = [IPAddress.Parse("10.92.1.254"), IPAddress.Parse("10.92.2.254")];

    public static IPAddress ServerAddress { get; } = IPAddress.Parse("10.92.2.1");

    public static IPAddress ClientAddress6 { get; } = IPAddress.Parse("fd92:1::1");

    /// <summary>The router's IPv6 address on the client's link (index 0) and on the server's (1).</summary>
    public static IPAddress[] RouterAddresses6 { get; } = [IPAddress.Parse("fd92:1::fe"), IPAddress.Parse("fd92:2::fe")];

    public static IPAddress ServerAddress6 { get; } = IPAddress.Parse("fd92:2::1");

    public static LineNetwork Create()
    {
        var net = new LineNetwork();
        try
        {
            net.Client = net.Add("client");
            net.Router = net.Add("router");
            net.Server = net.Add("server");
            foreach (var ns in net._all)
            {
                // Before the veths exist, so that they inherit the defaults.
                ns.Sysctl("net.ipv4.conf.all.rp_filter", "1");
                ns.Sysctl("net.ipv4.conf.default.rp_filter", "1");
                ns.Sysctl("net.ipv6.conf.default.accept_dad", "0");
            }

            net.Router.Sysctl("net.ipv4.ip_forward", "1");
            net.Router.Sysctl("net.ipv6.conf.all.forwarding", "1");
            Veth.Connect(net.Client, "c0", "10.92.1.1/24", net.Router, "r1", "10.92.1.254/24");
            Veth.Connect(net.Server, "s0", "10.92.2.1/24", net.Router, "r2", "10.92.2.254/24");
            net.Client.Ip("addr", "add", "fd92:1::1/64", "dev", "c0", "nodad");
            net.Router.Ip("addr", "add", "fd92:1::fe/64", "dev", "r1", "nodad");
            net.Server.Ip("addr", "add", "fd92:2::1/64", "dev", "s0", "nodad");
            net.Router.Ip("addr", "add", "fd92:2::fe/64", "dev", "r2", "nodad");
            net.Client.AddRoute("default", "10.92.1.254");
            net.Server.AddRoute("default", "10.92.2.254");
            net.Client.Ip("-6", "route", "add", "default", "via", "fd92:1::fe");
            net.Server.Ip("-6", "route", "add", "default", "via", "fd92:2::fe");
            return net;
        }
        catch
        {
            net.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var ns in _all)
        {
            await ns.DisposeAsync();
        }
    }

    private NetNamespace Add(string tag)
    {
        var ns = NetNamespace.Create(tag);
        _all.Add(ns);
        return ns;
    }
}
