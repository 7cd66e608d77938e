using Serval.Simulation;
using Serval.Stack.ControlPlane;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>
/// Ad hoc operation and router discovery on one simulated LAN with zero configuration (docs/control-protocol.md §12):
/// every interface has the LAN's broadcast address, hosts run only a <see cref="RouterDiscoveryController"/>, a router
/// only its <see cref="RouterController"/> and <see cref="RouterAdvertiser"/>.
/// </summary>
public sealed class RouterDiscoveryTests
{
    private static readonly ServiceId Web = ServiceId.FromName("web.adhoc");
    private static readonly LinkAddress RouterAddr = LinkAddress.Parse("10.0.0.254");

    private sealed class Lan
    {
        public Lan(ulong seed)
        {
            Net = new SimulatedNetwork(seed);
            Link = Net.AddLink("lan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) });
        }

        public SimulatedNetwork Net { get; }

        public SimLink Link { get; }

        public (ControlNode Node, RouterDiscoveryController Discovery) AddHost(string name, LinkAddress address, RouterDiscoveryOptions? options = null, HostControllerOptions? registration = null)
        {
            var host = Net.AddHost(name);
            host.Attach(Link, address, broadcastDefaultRule: true);
            var node = new ControlNode(Net, host);
            var discovery = node.Add(new RouterDiscoveryController(host.Engine, options ?? RouterDiscoveryOptions.Default, registration ?? HostControllerOptions.Default, new SeededRandomSource(Net.Random.NextUInt64())));
            Assert.Equal(ServalError.None, node.Do(() => discovery.Start(node.Now)));
            return (node, discovery);
        }

        public (ControlNode Node, RouterController Router, RouterAdvertiser Advertiser) AddRouter(RouterAdvertiserOptions? options = null, byte[]? key = null, LinkAddress? address = null)
        {
            var host = Net.AddHost("router", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
            host.Attach(Link, address ?? RouterAddr, broadcastDefaultRule: true);
            var node = new ControlNode(Net, host);
            var random = new SeededRandomSource(Net.Random.NextUInt64());
            var router = node.Add(new RouterController(host.Engine, new RouterControllerOptions { Key = key ?? ReadOnlyMemory<byte>.Empty }, random));
            var advertiser = node.Add(new RouterAdvertiser(host.Engine, router, options ?? RouterAdvertiserOptions.Default, random));
            Assert.Equal(ServalError.None, node.Do(() => router.Start(node.Now)));
            Assert.Equal(ServalError.None, node.Do(() => advertiser.Start(node.Now)));
            return (node, router, advertiser);
        }

        /// <summary>Connects <paramref name="client"/> to <see cref="Web"/>; returns the peer's address once connected.</summary>
        public LinkAddress Connect(ControlNode client)
        {
            var c = client.Do(() => client.Host.Connect(Web));
            Assert.True(Net.RunUntil(() => client.Host.IsConnected(c), TimeSpan.FromSeconds(3)), $"{client.Host} did not connect");
            return client.Host.Engine.GetFlow(c)!.PeerAddress;
        }
    }

    [Fact]
    public void Hosts_connect_by_broadcast_then_find_a_router_and_register_with_it()
    {
        var lan = new Lan(1);
        var (server, serverDiscovery) = lan.AddHost("server", LinkAddress.Parse("10.0.0.10"));
        var (client, _) = lan.AddHost("client", LinkAddress.Parse("10.0.0.20"));
        ControlTopology.Listen(server, Web);

        // No router, no rule but the interfaces' broadcast default: the SYN is broadcast and the server answers.
        Assert.Equal(LinkAddress.Parse("10.0.0.10"), lan.Connect(client));
        Assert.True(serverDiscovery.Counters.SolicitationsSent >= 1);
        Assert.Empty(serverDiscovery.GetRouters());

        // A router appears: its first advertisement makes the server register Web with it.
        var (routerNode, router, advertiser) = lan.AddRouter();
        Assert.True(lan.Net.RunUntil(() => router.GetRegistrations().Any(r => r.Prefix == ServicePrefix.Exact(Web)), TimeSpan.FromMilliseconds(50)), "the server did not register with the discovered router within 50 ms");
        var found = Assert.Single(serverDiscovery.GetRouters());
        Assert.Equal(RouterAddr, found.Endpoint.Address);
        Assert.Equal(ControlProtocol.RouterServiceId, found.Endpoint.ServiceId);
        Assert.Equal(router.Epoch, found.Epoch);
        Assert.True(advertiser.Counters.AdvertisementsSent >= 1);

        // Only the server's service is registered (not the discovery serviceID, not a control socket).
        Assert.Equal([ServicePrefix.Exact(Web)], router.GetRegistrations().Select(r => r.Prefix).ToList());

        // A third host joins: it solicits, hears the router at once and reaches the service through it.
        var (third, thirdDiscovery) = lan.AddHost("third", LinkAddress.Parse("10.0.0.30"));
        Assert.True(lan.Net.RunUntil(() => thirdDiscovery.GetRouters().Count == 1, TimeSpan.FromMilliseconds(200)), "the third host did not find the router by soliciting");
        Assert.True(advertiser.Counters.Solicitations >= 1);
        var forwarded = routerNode.Host.Engine.Counters.Forwarded;
        Assert.Equal(LinkAddress.Parse("10.0.0.10"), lan.Connect(third));
        Assert.True(routerNode.Host.Engine.Counters.Forwarded > forwarded, "the SYN did not go through the router");
    }

    [Fact]
    public void A_router_that_goes_away_is_forgotten_after_its_lifetime_and_broadcast_takes_over_again()
    {
        var lan = new Lan(2);
        var (server, serverDiscovery) = lan.AddHost("server", LinkAddress.Parse("10.0.0.10"));
        var (client, clientDiscovery) = lan.AddHost("client", LinkAddress.Parse("10.0.0.20"));
        ControlTopology.Listen(server, Web);
        var (routerNode, router, _) = lan.AddRouter();
        Assert.True(lan.Net.RunUntil(() => router.GetRegistrations().Count == 1 && clientDiscovery.GetRouters().Count == 1, TimeSpan.FromSeconds(1)));

        routerNode.Kill(1);
        var killedAt = lan.Net.Now;
        Assert.True(lan.Net.RunUntil(() => clientDiscovery.GetRouters().Count == 0 && serverDiscovery.GetRouters().Count == 0, TimeSpan.FromSeconds(10)));
        var forgottenAfter = lan.Net.Now - killedAt;
        Assert.InRange(forgottenAfter, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(3.1)); // the advertised 3 s lifetime
        Assert.Equal(1, clientDiscovery.Counters.RoutersExpired);

        // The default rule toward the router went with it: the broadcast rule answers again.
        Assert.Equal(LinkAddress.Parse("10.0.0.10"), lan.Connect(client));
    }

    [Fact]
    public void Several_servers_answer_a_broadcast_syn_the_first_syn_ack_wins_and_the_others_are_reset()
    {
        var lan = new Lan(3);
        var servers = Enumerable.Range(0, 3).Select(i => lan.AddHost($"server{i}", LinkAddress.FromIPv4(0x0A00000A + (uint)i)).Node).ToList();
        foreach (var s in servers)
        {
            ControlTopology.Listen(s, Web);
        }

        var (client, _) = lan.AddHost("client", LinkAddress.Parse("10.0.0.20"));
        var peer = lan.Connect(client);
        lan.Net.RunFor(TimeSpan.FromMilliseconds(500));

        // One server holds the connection; the others were refused and freed their half-open state.
        Assert.Equal(1, client.Host.Engine.FlowCount);
        Assert.Equal(1, servers.Count(s => s.Host.Engine.FlowCount == 1));
        Assert.Equal(2, servers.Count(s => s.Host.Engine.FlowCount == 0));
        Assert.Contains(peer, servers.Select(s => s.Host.Engine.Interfaces[1].Address));
        Assert.Equal(2, client.Host.Engine.Counters.ResetsSent);
    }

    [Fact]
    public void A_flood_of_forged_advertisements_is_rate_limited_and_capped()
    {
        var lan = new Lan(4);
        var (victim, discovery) = lan.AddHost("victim", LinkAddress.Parse("10.0.0.10"), RouterDiscoveryOptions.Default with { MaxRouters = 3 });
        ControlTopology.Listen(victim, Web);
        var attacker = lan.Net.AddHost("attacker");
        attacker.Attach(lan.Link, LinkAddress.Parse("10.0.0.66"));
        attacker.Do(e => e.Services.Add(ServicePrefix.Exact(ControlProtocol.AdvertiseServiceId), Serval.Stack.Services.ServiceTarget.Forward(LinkAddress.Parse("10.0.0.10"), 1)));
        var socket = SocketHandle.None;
        Assert.Equal(ServalError.None, attacker.Do(e => e.BindDatagram(null, attacker.Now, out socket)));
        var buffer = new byte[ControlProtocol.AuthenticatedLength];

        // 5 000 advertisements naming 5 000 different routers, 500 malformed datagrams, within one second.
        for (var i = 0; i < 5_000; i++)
        {
            var n = new ControlMessage
            {
                Type = ControlMessageType.RouterAdvertise,
                Sender = (ulong)i + 1,
                Sequence = 1,
                Epoch = 99,
                LeaseMilliseconds = 3_600_000,
                Prefix = ServicePrefix.Exact(ServiceId.FromName($"forged{i}")),
            }.Emit(buffer);
            attacker.Do(e => e.SendTo(socket, ControlProtocol.AdvertiseServiceId, buffer.AsSpan(0, n), attacker.Now));
            if (i % 10 == 0)
            {
                attacker.Do(e => e.SendTo(socket, ControlProtocol.AdvertiseServiceId, "not a control message"u8, attacker.Now));
            }

            lan.Net.RunFor(TimeSpan.FromMilliseconds(0.2));
        }

        lan.Net.RunFor(TimeSpan.FromMilliseconds(100));
        Assert.Equal(3, discovery.GetRouters().Count);
        Assert.Equal(3, discovery.Counters.RoutersDiscovered);
        Assert.True(discovery.Counters.RateLimited > 4_000, $"rate limited {discovery.Counters.RateLimited}");
        Assert.True(discovery.Counters.RoutersRefused > 0);
        Assert.True(discovery.Counters.Malformed > 0);
        Assert.Equal(5_500, discovery.Counters.RateLimited + discovery.Counters.Advertisements + discovery.Counters.Malformed);

        // A forged advertisement's hour-long lifetime is cut to MaxLifetime (60 s): the slots free themselves.
        lan.Net.RunFor(TimeSpan.FromSeconds(61));
        Assert.Empty(discovery.GetRouters());
        Assert.Equal(3, discovery.Counters.RoutersExpired);
    }

    [Fact]
    public void With_a_key_unauthenticated_advertisements_are_ignored_and_authentic_ones_are_used()
    {
        var key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        var lan = new Lan(5);
        var (server, discovery) = lan.AddHost("server", LinkAddress.Parse("10.0.0.10"), RouterDiscoveryOptions.Default with { Key = key }, HostControllerOptions.Default with { Key = key });
        ControlTopology.Listen(server, Web);
        var (_, unkeyed, _) = lan.AddRouter();
        lan.Net.RunFor(TimeSpan.FromSeconds(2));
        Assert.Empty(discovery.GetRouters());
        Assert.True(discovery.Counters.Unauthenticated >= 2);
        Assert.Empty(unkeyed.GetRegistrations());

        // A router with the key is found and registered with; the unkeyed one still is not.
        var keyedAddress = LinkAddress.Parse("10.0.0.253");
        var (_, keyed, _) = lan.AddRouter(key: key, address: keyedAddress);
        Assert.True(lan.Net.RunUntil(() => keyed.GetRegistrations().Count == 1, TimeSpan.FromSeconds(1)), "the host did not register with the keyed router");
        Assert.Equal(keyedAddress, Assert.Single(discovery.GetRouters()).Endpoint.Address);
        Assert.Empty(unkeyed.GetRegistrations());
    }

    [Fact]
    public void Solicitations_are_answered_at_a_bounded_rate()
    {
        var lan = new Lan(6);
        var (_, _, advertiser) = lan.AddRouter(RouterAdvertiserOptions.Default with { Interval = TimeSpan.FromSeconds(10), Lifetime = TimeSpan.FromSeconds(30), SolicitedRate = 5 });
        var sent = advertiser.Counters.AdvertisementsSent;
        var hosts = Enumerable.Range(0, 40).Select(i => lan.AddHost($"h{i}", LinkAddress.FromIPv4(0x0A000064 + (uint)i), RouterDiscoveryOptions.Default with { SolicitAttempts = 1 })).ToList();
        lan.Net.RunFor(TimeSpan.FromMilliseconds(500));

        // 40 solicitations within a few virtual milliseconds: a burst of 5 answers, then nothing until the rate allows.
        Assert.Equal(40, advertiser.Counters.Solicitations);
        Assert.InRange(advertiser.Counters.AdvertisementsSent - sent, 1, 8);
        Assert.True(advertiser.Counters.SolicitationsRateLimited > 0);
        Assert.All(hosts, h => Assert.Single(h.Discovery.GetRouters()));
    }
}

/// <summary>The RouterSolicit and RouterAdvertise messages (docs/control-protocol.md §3 and §12).</summary>
public sealed class RouterDiscoveryMessageTests
{
    private static readonly ControlMessage Advertise = new()
    {
        Type = ControlMessageType.RouterAdvertise,
        Sender = 5,
        Sequence = 9,
        Epoch = 77,
        Timestamp = 1234,
        LeaseMilliseconds = 3000,
        Prefix = ServicePrefix.Exact(ControlProtocol.RouterServiceId),
    };

    private static readonly ControlMessage Solicit = new() { Type = ControlMessageType.RouterSolicit, Sender = 6, Sequence = 1 };

    [Fact]
    public void Both_round_trip_with_and_without_a_mac()
    {
        var key = new byte[16];
        foreach (var m in new[] { Advertise, Solicit })
        {
            var b = new byte[ControlProtocol.AuthenticatedLength];
            Assert.Equal(76, m.Emit(b));
            Assert.True(ControlMessage.TryParse(b.AsSpan(0, 76), out var parsed, out _));
            Assert.Equal(m, parsed);
            Assert.Equal(108, m.Emit(b, key));
            Assert.True(ControlMessage.TryParse(b, out parsed, out _));
            Assert.True(parsed.IsAuthenticated);
            Assert.False(parsed.IsAck);
        }

        Assert.Equal(ServiceId.FromName("serval.router.advertise"), ControlProtocol.AdvertiseServiceId);
        Assert.Equal(ServiceId.FromName("serval.router.solicit"), ControlProtocol.SolicitServiceId);
    }

    [Fact]
    public void Bad_fields_are_rejected_with_their_reason()
    {
        static ControlMessageError Parse(ControlMessage m, Action<byte[]>? corrupt = null)
        {
            var b = new byte[76];
            m.Emit(b);
            corrupt?.Invoke(b);
            return ControlMessage.TryParse(b, out _, out var e) ? ControlMessageError.None : e;
        }

        Assert.Equal(ControlMessageError.BadLease, Parse(Advertise with { LeaseMilliseconds = 0 }));
        Assert.Equal(ControlMessageError.BadLease, Parse(Solicit with { LeaseMilliseconds = 1 }));
        Assert.Equal(ControlMessageError.BadPrefix, Parse(Advertise with { Prefix = new ServicePrefix(ControlProtocol.RouterServiceId.Truncate(8), 8) }));
        Assert.Equal(ControlMessageError.BadPrefix, Parse(Advertise with { Prefix = ServicePrefix.Exact(default) }));
        Assert.Equal(ControlMessageError.BadPrefix, Parse(Solicit with { Prefix = ServicePrefix.Exact(ControlProtocol.RouterServiceId) }));
        Assert.Equal(ControlMessageError.BadWeight, Parse(Advertise with { Weight = 1 }));
        Assert.Equal(ControlMessageError.BadTransports, Parse(Advertise with { Transports = ServiceTransports.Stream }));
        Assert.Equal(ControlMessageError.BadFlags, Parse(Advertise with { Flags = ControlMessageFlags.Draining }));
        Assert.Equal(ControlMessageError.BadStatus, Parse(Solicit, b => b[3] = 1));
        Assert.Equal(ControlMessageError.BadSender, Parse(Solicit with { Sender = 0 }));
    }
}
