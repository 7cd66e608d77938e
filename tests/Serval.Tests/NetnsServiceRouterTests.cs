using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;
using Serval.Wire.Pcap;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// A service router forwarding over raw IP between subnets, as the reference's does (docs/protocol.md §8; reference captures
/// sr_syn_a.pcap and sr_syn_b.pcap): client, router and server in three network namespaces (<see cref="LineNetwork"/>:
/// client — router — server, IP forwarding in the router namespace, strict reverse-path filtering everywhere), one
/// <see cref="ServalHost"/> each with raw IP links made inside its namespace; the client's default rule points at the
/// router, whose FORWARD rule sends the SYN on to the server. The forwarded SYN must leave the router with the client's
/// IP source (the transport checksum is computed for it, and the server verifies it against the IP header) and one
/// TTL less; everything after it goes straight between client and server, IP-routed by the router namespace's kernel.
/// Packet sockets in the client's and the server's namespaces see every packet as the end hosts do; an independent
/// checker (<see cref="ReferenceLayout"/>) compares each one — IPv4 header, SAL and TCP — with the reference's packets
/// captured at the same place. Needs root (namespaces, raw IP); skipped otherwise.
/// </summary>
[Trait("Tier", "netns")]
public sealed class NetnsServiceRouterTests(ITestOutputHelper output)
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.netns.router.echo");

    private static void Require()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        Assert.SkipUnless(RawIpLink.IsSupported, "Raw IP protocol 144 needs CAP_NET_RAW; run the tests as root to include this test.");
    }

    private static RawIpLink Link(NetNamespace ns, IPAddress address) => ns.Invoke(() => new RawIpLink(address));

    /// <summary>The router and the server on raw IP links of one address family; the router forwards the service to the server.</summary>
    private static async Task<(ServalHost Router, ServalHost Server, RawIpLink ServerLink)> StartRouterAndServerAsync(
        LineNetwork net, IPAddress[] router, IPAddress server, CancellationToken ct, Func<ServalLink, ServalLink>? wrapServerLink = null)
    {
        ServalHost? routerHost = null, serverHost = null;
        try
        {
            routerHost = await ServalHost.StartAsync(
                new ServalHostOptions
                {
                    Name = "line-router",
                    Links = [Link(net.Router, router[0]), Link(net.Router, router[1])],
                    Engine = TestNet.FastEngine with { Mode = EngineMode.ServiceRouter },
                },
                ct);
            var serverLink = Link(net.Server, server);
            serverHost = await ServalHost.StartAsync(
                new ServalHostOptions { Name = "line-server", Links = [wrapServerLink is null ? serverLink : wrapServerLink(serverLink)], Engine = TestNet.FastEngine },
                ct);

            // Link 2 of the router is the veth towards the server (interface indexes start at 1).
            Assert.Equal(ServiceTableResult.Ok, await routerHost.AddRuleAsync(ServicePrefix.Exact(Echo), ServiceTarget.Forward(serverHost.Address(), 2), cancellationToken: ct));
            return (routerHost, serverHost, serverLink);
        }
        catch
        {
            if (serverHost is not null)
            {
                await serverHost.DisposeAsync();
            }

            if (routerHost is not null)
            {
                await routerHost.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>The client, its default rule pointing at the router.</summary>
    private static ValueTask<ServalHost> StartClientAsync(LineNetwork net, IPAddress client, ServalHost router, CancellationToken ct) =>
        ServalHost.StartAsync(
            new ServalHostOptions { Name = "line-client", Links = [Link(net.Client, client)], Engine = TestNet.FastEngine, DefaultRouter = router.Address(0) },
            ct);

    [Fact]
    public async Task A_forwarded_syn_keeps_the_clients_source_and_one_ttl_less_and_every_packet_has_the_reference_layout()
    {
        Require();
        var clock = Stopwatch.StartNew();
        var ct = TestNet.Timeout(40);
        await using var net = LineNetwork.Create();
        var (router, server, _) = await StartRouterAndServerAsync(net, LineNetwork.RouterAddresses, LineNetwork.ServerAddress, ct);
        await using (router)
        await using (server)
        await using (var client = await StartClientAsync(net, LineNetwork.ClientAddress, router, ct))
        {
            var clientAddress = LinkAddress.FromIPAddress(LineNetwork.ClientAddress);
            var serverAddress = LinkAddress.FromIPAddress(LineNetwork.ServerAddress);
            Assert.All(router.Links.Concat(client.Links).Concat(server.Links), l => Assert.True(((RawIpLink)l).WritesIPHeader && !l.RewritesSource, $"{l} does not write its IP header"));

            // Each end's packet socket sees what that host sends and receives, with the headers its kernel sees.
            using var clientTap = net.Client.Invoke(() => PacketTap.OnInterfaces(clientAddress));
            using var serverTap = net.Server.Invoke(() => PacketTap.OnInterfaces(serverAddress));
            await using (var listener = await StreamTests.EchoServerAsync(server, Echo, ct))
            {
                var (sent, received) = await StreamTests.TransferAsync(client, Echo, 300_000, ct);
                Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));

                // The close (transport FIN, SAL FIN, ACKs both ways) ends both flows; TIME-WAIT is short in these engines.
                Assert.True(await TestNet.EventuallyAsync(async () => await client.GetFlowCountAsync(ct) == 0 && await server.GetFlowCountAsync(ct) == 0, seconds: 10), "the connection did not close");
            }

            clientTap.Dispose();
            serverTap.Dispose();
            Assert.True(clientTap.Failures.Count == 0, "client side: " + string.Join("\n", clientTap.Failures));
            Assert.True(serverTap.Failures.Count == 0, "server side: " + string.Join("\n", serverTap.Failures));

            // The forwarded SYN as the server received it (a retransmission, on a loaded machine, the same way): from
            // the client, TTL 64 - 1 (sr_syn_b.pcap frame 3).
            var forwarded = serverTap.Packets.Where(p => p.Kind == ReferenceLayout.Kind.Syn).ToList();
            Assert.NotEmpty(forwarded);
            Assert.All(forwarded, p => Assert.Equal(((UInt128)clientAddress.IPv4Value, (UInt128)serverAddress.IPv4Value, IPHopLimit.Default - 1), (p.SourceAddress, p.DestinationAddress, (int)p.Ttl)));
            Assert.Equal(forwarded.Count, ReferenceLayout.CheckForwardedHopLimits(clientTap.Packets, serverTap.Packets));

            // Every packet both ways, close included: SAL and TCP fields as the reference's of the same kind, IPv4
            // headers as the reference's captured at the same place (client's link: sr_syn_a, server's link: sr_syn_b).
            RawIpLayoutTests.AssertReferenceLayout(clientTap.Packets, requireEveryKind: true, minConnections: 1);
            RawIpLayoutTests.AssertReferenceLayout(serverTap.Packets, requireEveryKind: true, minConnections: 1);
            RawIpLayoutTests.AssertReferenceIPLayout(clientTap.Packets, "sr_syn_a.pcap");
            RawIpLayoutTests.AssertReferenceIPLayout(serverTap.Packets, "sr_syn_b.pcap");

            // Only the SYN went through the service router's engine; the rest went directly (the router namespace's
            // kernel forwarded it at the IP level), and nobody dropped a packet for its checksum.
            Assert.Equal(forwarded.Count, router.Counters.Forwarded);
            Assert.Equal(router.Counters.Forwarded, router.Counters.PacketsReceived);
            Assert.Equal(0, router.Counters.HopLimitExceeded);
            Assert.Equal(0, server.Counters.BadTransportChecksum);
            Assert.Equal(0, client.Counters.BadTransportChecksum);
            Assert.Equal(0, server.Counters.Malformed);
            output.WriteLine($"{clientTap.Packets.Count} packets checked on the client's link, {serverTap.Packets.Count} on the server's; {forwarded.Count} forwarded SYN(s), TTL {forwarded[0].Ttl}; {clock.Elapsed.TotalSeconds:F1} s");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_syn_whose_ttl_would_reach_zero_at_the_router_is_dropped_and_counted(bool ipv6)
    {
        Require();
        var ct = TestNet.Timeout(30);
        await using var net = LineNetwork.Create();
        var (clientIP, routerIPs, serverIP) = ipv6
            ? (LineNetwork.ClientAddress6, LineNetwork.RouterAddresses6, LineNetwork.ServerAddress6)
            : (LineNetwork.ClientAddress, LineNetwork.RouterAddresses, LineNetwork.ServerAddress);
        var (router, server, _) = await StartRouterAndServerAsync(net, routerIPs, serverIP, ct);
        await using (router)
        await using (server)
        await using (var listener = await StreamTests.EchoServerAsync(server, Echo, ct))
        {
            var clientAddress = LinkAddress.FromIPAddress(clientIP);
            var routerAddress = router.Address(0);
            using var serverTap = net.Server.Invoke(() => PacketTap.OnInterfaces(LinkAddress.FromIPAddress(serverIP)));

            // A SYN from the client's address with the TTL we choose, sent by a raw link in the client's namespace (no
            // host there: the server's SYN-ACK finds no one, which is fine here).
            var syn = new SalPacketRepr
            {
                SourceFlow = new FlowId(0x5151),
                Protocol = SalPacketRepr.ProtocolTcp,
                Control = new SalControl(SalControlFlags.Syn, 1000, 0, new Nonce(0x0123_4567_89ab_cdef)),
                DestinationService = Echo,
                Tcp = new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = 7, Window = 65535, MaxSegmentSize = 1400 },
            };
            var buffer = new byte[512];
            var n = syn.Emit(buffer, default, new TransportPseudoHeader(clientAddress, routerAddress));
            using var sender = Link(net.Client, clientIP);
            void SendWithTtl(int ttl)
            {
                sender.Send(clientAddress, routerAddress, buffer.AsSpan(0, n), ttl);
                sender.Flush();
            }

            SendWithTtl(1);
            Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(router.Counters.HopLimitExceeded == 1), seconds: 10), "TTL 1 was not counted");
            SendWithTtl(0);
            Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(router.Counters.HopLimitExceeded == 2), seconds: 10), "TTL 0 was not counted");
            Assert.Equal(0, router.Counters.Forwarded);

            // With one hop to spare it goes through, and reaches the server with TTL 1.
            SendWithTtl(2);
            Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(router.Counters.Forwarded == 1 && server.Counters.PacketsReceived >= 1), seconds: 10), "TTL 2 was not forwarded");
            serverTap.Dispose();
            Assert.Empty(serverTap.Failures);
            var forwarded = Assert.Single(serverTap.Packets, p => p.Kind == ReferenceLayout.Kind.Syn);
            Assert.Equal(1, forwarded.Ttl);
            Assert.Equal(ipv6, forwarded.IPv6);
            Assert.Equal(AddressKey(clientIP), forwarded.SourceAddress);
            Assert.Equal(2, router.Counters.HopLimitExceeded);
            Assert.Equal(0, server.Counters.BadTransportChecksum);
        }
    }

    [Fact]
    public async Task Over_raw_ipv6_the_forwarded_syn_keeps_the_clients_source_and_one_hop_less()
    {
        Require();
        var ct = TestNet.Timeout(30);
        await using var net = LineNetwork.Create();
        var capture = new MemoryStream();
        var (router, server, serverLink) = await StartRouterAndServerAsync(
            net, LineNetwork.RouterAddresses6, LineNetwork.ServerAddress6, ct, link => new PcapCaptureLink(link, capture, leaveOpen: true));
        await using (router)
        {
            await using (server)
            await using (var client = await StartClientAsync(net, LineNetwork.ClientAddress6, router, ct))
            {
                var clientAddress = LinkAddress.FromIPAddress(LineNetwork.ClientAddress6);
                var serverAddress = LinkAddress.FromIPAddress(LineNetwork.ServerAddress6);
                using var clientTap = net.Client.Invoke(() => PacketTap.OnInterfaces(clientAddress));
                using var serverTap = net.Server.Invoke(() => PacketTap.OnInterfaces(serverAddress));
                await using (var listener = await StreamTests.EchoServerAsync(server, Echo, ct))
                {
                    Assert.True(serverLink.WritesIPHeader && serverLink.ReportsHopLimit, "IPV6_HDRINCL or IPV6_RECVHOPLIMIT is not in use");
                    var (sent, received) = await StreamTests.TransferAsync(client, Echo, 200_000, ct);
                    Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));

                    // The server verifies transport checksums strictly against the IPv6 source: nothing failed.
                    Assert.Equal(0, server.Counters.BadTransportChecksum);
                    Assert.InRange(router.Counters.Forwarded, 1, 3);
                    Assert.Equal(router.Counters.Forwarded, router.Counters.PacketsReceived);
                    Assert.True(await TestNet.EventuallyAsync(async () => await client.GetFlowCountAsync(ct) == 0 && await server.GetFlowCountAsync(ct) == 0, seconds: 10), "the connection did not close");
                }

                // Every packet both ways, close included, checked independently as over IPv4 (SOURCE6 instead of
                // SOURCE, the IPv6 pseudo-header): the shapes of the reference's packets of the same kind, its
                // control arithmetic, and the IP headers (who to whom, hop limit) of the reference's captures taken
                // at the same places of the same topology.
                clientTap.Dispose();
                serverTap.Dispose();
                Assert.True(clientTap.Failures.Count == 0, "client side: " + string.Join("\n", clientTap.Failures));
                Assert.True(serverTap.Failures.Count == 0, "server side: " + string.Join("\n", serverTap.Failures));
                Assert.All(clientTap.Packets.Concat(serverTap.Packets), p => Assert.True(p.IPv6, "an IPv4 packet on the IPv6 line"));
                var forwarded = serverTap.Packets.Where(p => p.Kind == ReferenceLayout.Kind.Syn).ToList();
                Assert.NotEmpty(forwarded);
                Assert.Equal(forwarded.Count, ReferenceLayout.CheckForwardedHopLimits(clientTap.Packets, serverTap.Packets));
                RawIpLayoutTests.AssertReferenceLayout(clientTap.Packets, requireEveryKind: true, minConnections: 1);
                RawIpLayoutTests.AssertReferenceLayout(serverTap.Packets, requireEveryKind: true, minConnections: 1);
                RawIpLayoutTests.AssertReferenceIPLayout(clientTap.Packets, "sr_syn_a.pcap");
                RawIpLayoutTests.AssertReferenceIPLayout(serverTap.Packets, "sr_syn_b.pcap");
            }

            // The server's capture link recorded what its raw link reported for the first packet received: the
            // forwarded SYN, from the client's address, with the hop limit the router set (64 - 1).
            capture.Position = 0;
            using var reader = new PcapReader(capture);
            var found = false;
            while (!found && reader.TryRead(out var record))
            {
                Assert.True(Ipv6Repr.TryParse(record.Data, out var ip, out var payloadLength, out _));
                if (!SalPacketRepr.TryParse(record.Data.AsSpan(Ipv6Repr.HeaderLength, payloadLength), out var p, out _, out _, out _)
                    || p.Control is not { } c || c.Flags != SalControlFlags.Syn)
                {
                    continue;
                }

                found = true;
                Assert.Equal(LinkAddress.FromIPAddress(LineNetwork.ClientAddress6), ip.Source);
                Assert.Equal(LinkAddress.FromIPAddress(LineNetwork.ServerAddress6), ip.Destination);
                Assert.Equal(IPHopLimit.Default - 1, ip.HopLimit);
                Assert.NotNull(p.SourceRoute);
                Assert.True(p.SourceRoute.IsIPv6);
            }

            Assert.True(found, "no SYN in the server's capture");
        }
    }

    /// <summary>An address as <see cref="ReferenceLayout.Packet"/> holds it (IPv4 in the low 32 bits).</summary>
    private static UInt128 AddressKey(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        return bytes.Length == 4 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes) : System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }
}
