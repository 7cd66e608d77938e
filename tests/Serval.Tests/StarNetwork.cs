using System.Globalization;
using System.Net;
using Serval.Netns;

namespace Serval.Tests;

/// <summary>
/// Four network namespaces on three separate veth links, the router namespace in the middle:
/// <code>
///   client  10.91.1.1/24 ── veth ── 10.91.1.254 ┐
///                                               router (IP forwarding on)
///   replica1 10.91.2.1/24 ── veth ── 10.91.2.254 ┤
///   replica2 10.91.3.1/24 ── veth ── 10.91.3.254 ┘
/// </code>
/// The client and the replicas route the other subnets through the router namespace, so a replica's replies reach the
/// client directly at the IP level (the kernel of the router namespace forwards them; no Serval code sees them). The
/// addresses only exist inside the namespaces, which are deleted on disposal, also when creation fails half way.
/// </summary>
internal sealed class StarNetwork : IAsyncDisposable
{
    private readonly List<NetNamespace> _all = [];

    private StarNetwork()
    {
    }

    public NetNamespace Client { get; private set; } = null!;

    public NetNamespace Router { get; private set; } = null!;

    /// <summary>The two replica namespaces.</summary>
    public NetNamespace[] Replicas { get; } = new NetNamespace[2];

    public static IPAddress ClientAddress { get; } = IPAddress.Parse("10.91.1.1");

    /// <summary>The router's address on the client's link (index 0) and on each replica's link (1, 2).</summary>
    public static IPAddress[] RouterAddresses { get; } = [IPAddress.Parse("10.91.1.254"), IPAddress.Parse("10.91.2.254"), IPAddress.Parse("10.91.3.254")];

    public static IPAddress[] ReplicaAddresses { get; } = [IPAddress.Parse("10.91.2.1"), IPAddress.Parse("10.91.3.1")];

    public IEnumerable<NetNamespace> Namespaces => _all;

    public static StarNetwork Create()
    {
        var net = new StarNetwork();
        try
        {
            net.Client = net.Add("client");
            net.Router = net.Add("router");
            net.Replicas[0] = net.Add("rep1");
            net.Replicas[1] = net.Add("rep2");
            net.Router.Sysctl("net.ipv4.ip_forward", "1");
            Veth.Connect(net.Client, "c0", "10.91.1.1/24", net.Router, "r1", "10.91.1.254/24");
            Veth.Connect(net.Replicas[0], "s0", "10.91.2.1/24", net.Router, "r2", "10.91.2.254/24");
            Veth.Connect(net.Replicas[1], "s0", "10.91.3.1/24", net.Router, "r3", "10.91.3.254/24");
            net.Client.AddRoute("10.91.2.0/24", "10.91.1.254");
            net.Client.AddRoute("10.91.3.0/24", "10.91.1.254");
            net.Replicas[0].AddRoute("10.91.1.0/24", "10.91.2.254");
            net.Replicas[0].AddRoute("10.91.3.0/24", "10.91.2.254");
            net.Replicas[1].AddRoute("10.91.1.0/24", "10.91.3.254");
            net.Replicas[1].AddRoute("10.91.2.0/24", "10.91.3.254");
            return net;
        }
        catch
        {
            net.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    /// <summary>Bytes received and sent by a device of the router namespace (its line of /proc/net/dev).</summary>
    public (long Received, long Sent) RouterDeviceBytes(string device)
    {
        foreach (var line in Router.Exec("cat", "/proc/net/dev").Split('\n'))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line[..colon].Trim() == device)
            {
                var f = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return (long.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[8], CultureInfo.InvariantCulture));
            }
        }

        throw new InvalidOperationException($"no device {device} in the router namespace's /proc/net/dev");
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
