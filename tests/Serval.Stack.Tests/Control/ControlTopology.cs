using Serval.Simulation;
using Serval.Stack.ControlPlane;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>A client, a service router and replicas on one LAN, each with its controller (no static rule anywhere).</summary>
internal sealed class ControlTopology
{
    public static readonly ServiceId Web = ServiceId.FromName("web");
    public static readonly LinkAddress ClientAddr = LinkAddress.Parse("10.0.0.1");
    public static readonly LinkAddress RouterAddr = LinkAddress.Parse("10.0.0.254");
    public static readonly byte[] Key = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];

    private ControlTopology(SimulatedNetwork net, SimLink lan)
    {
        Net = net;
        Lan = lan;
    }

    public SimulatedNetwork Net { get; }

    public SimLink Lan { get; }

    public ControlNode Router { get; private set; } = null!;

    public RouterController RouterController { get; private set; } = null!;

    public int RouterInterface { get; private set; }

    public ControlNode Client { get; private set; } = null!;

    public HostController ClientController { get; private set; } = null!;

    public List<ControlNode> Replicas { get; } = [];

    public List<HostController> ReplicaControllers { get; } = [];

    public List<LinkAddress> ReplicaAddrs { get; } = [];

    public List<int> ReplicaInterfaces { get; } = [];

    public static ControlTopology Build(
        ulong seed,
        int replicas,
        byte[]? key = null,
        Func<RouterControllerOptions, RouterControllerOptions>? router = null,
        Func<HostControllerOptions, HostControllerOptions>? host = null,
        LinkConditions? conditions = null,
        IRouterRegistry? registry = null)
    {
        var net = new SimulatedNetwork(seed);
        var t = new ControlTopology(net, net.AddLink("lan", conditions ?? LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) }));
        t.StartRouter(key, router, registry);
        var hostOptions = HostOptions(key);
        hostOptions = host?.Invoke(hostOptions) ?? hostOptions;
        (t.Client, t.ClientController, _) = t.AddHost("client", ClientAddr, hostOptions);
        for (var i = 0; i < replicas; i++)
        {
            t.AddReplica(hostOptions);
        }

        return t;
    }

    public static HostControllerOptions HostOptions(byte[]? key = null) => new()
    {
        Routers = [new RouterEndpoint(RouterAddr, 1)],
        Key = key ?? ReadOnlyMemory<byte>.Empty,
    };

    /// <summary>Starts a (new) router host on the LAN at <see cref="RouterAddr"/> with a fresh controller (new epoch).</summary>
    public void StartRouter(byte[]? key = null, Func<RouterControllerOptions, RouterControllerOptions>? configure = null, IRouterRegistry? registry = null)
    {
        var host = Net.AddHost($"router{Net.Hosts.Count}", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
        RouterInterface = host.Attach(Lan, RouterAddr);
        Router = new ControlNode(Net, host);
        var options = new RouterControllerOptions { Key = key ?? ReadOnlyMemory<byte>.Empty };
        options = configure?.Invoke(options) ?? options;
        RouterController = Router.Add(new RouterController(host.Engine, options, new SeededRandomSource(Net.Random.NextUInt64())) { Registry = registry });
        Assert.Equal(ServalError.None, Router.Do(() => RouterController.Start(Router.Now)));
    }

    public (ControlNode Node, HostController Controller, int Interface) AddHost(string name, LinkAddress address, HostControllerOptions options, EngineOptions? engine = null)
    {
        var host = Net.AddHost(name, engine);
        var iface = host.Attach(Lan, address);
        var node = new ControlNode(Net, host);
        var controller = node.Add(new HostController(host.Engine, options, new SeededRandomSource(Net.Random.NextUInt64())));
        Assert.Equal(ServalError.None, node.Do(() => controller.Start(node.Now)));
        return (node, controller, iface);
    }

    public int AddReplica(HostControllerOptions? options = null, EngineOptions? engine = null)
    {
        var i = Replicas.Count;
        var address = LinkAddress.FromIPv4(0x0A00000B + (uint)i);
        var (node, controller, iface) = AddHost($"replica{i}", address, options ?? HostOptions(), engine);
        Replicas.Add(node);
        ReplicaControllers.Add(controller);
        ReplicaAddrs.Add(address);
        ReplicaInterfaces.Add(iface);
        return i;
    }

    /// <summary>Listens on <paramref name="service"/> at every replica.</summary>
    public SocketHandle[] ListenAll(ServiceId service, TransportProtocol protocol = TransportProtocol.Stream) =>
        [.. Replicas.Select(r => Listen(r, service, protocol))];

    public static SocketHandle Listen(ControlNode node, ServiceId service, TransportProtocol protocol = TransportProtocol.Stream) =>
        node.Do(() => node.Host.Listen(service, protocol, 4096));

    /// <summary>FORWARD rules the router holds for <paramref name="prefix"/> (exact entry).</summary>
    public List<LinkAddress> RouterTargets(ServicePrefix prefix) =>
        Router.Host.Engine.Services.TryGetExact(prefix, out var entry)
            ? [.. entry.Rules.Where(r => r.Target.Type == Serval.Stack.Services.ServiceTargetType.Forward).Select(r => r.Target.Address)]
            : [];

    public List<LinkAddress> RouterTargets(ServiceId service) => RouterTargets(ServicePrefix.Exact(service));

    /// <summary>Opens <paramref name="count"/> connections from the client and waits until all are established; returns how many each replica accepted.</summary>
    public int[] ConnectAll(ServiceId service, SocketHandle[] listeners, int count, TimeSpan timeout)
    {
        var clients = Enumerable.Range(0, count).Select(_ => Client.Do(() => Client.Host.Connect(service))).ToList();
        Assert.True(
            Net.RunUntil(() => clients.All(c => Client.Host.Engine.GetState(c) is SalState.Connected or SalState.Closed), timeout),
            "connections still pending");
        var connected = clients.Count(c => Client.Host.IsConnected(c));
        Assert.True(connected == count, $"{connected} of {count} connected");
        Net.RunFor(TimeSpan.FromMilliseconds(50));
        var accepted = new int[Replicas.Count];
        for (var i = 0; i < Replicas.Count; i++)
        {
            if (listeners[i].IsNone)
            {
                continue;
            }

            while (Replicas[i].Host.Engine.Accept(listeners[i], out _) == ServalError.None)
            {
                accepted[i]++;
            }
        }

        return accepted;
    }

    /// <summary>Sends <paramref name="size"/> bytes from a server connection to a client connection and checks they all arrive.</summary>
    public void Exchange(ControlNode server, SocketHandle serverConnection, SocketHandle clientConnection, int size)
    {
        var data = SimApp.RandomBytes(size, size);
        var sent = 0;
        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        var ok = Net.RunUntil(
            () =>
            {
                while (sent < data.Length && server.Host.Engine.Write(serverConnection, data.AsSpan(sent), server.Now, out var n) == ServalError.None && n > 0)
                {
                    sent += n;
                }

                server.Host.Pump();
                while (Client.Host.Engine.Read(clientConnection, buffer, Client.Now, out var n, out _) == ServalError.None && n > 0)
                {
                    received.Write(buffer, 0, n);
                }

                Client.Host.Pump();
                return received.Length == data.Length;
            },
            TimeSpan.FromSeconds(30));
        Assert.True(ok, $"sent {sent}, received {received.Length} of {data.Length}");
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(received.ToArray()));
    }
}
