using System.Net;
using System.Security.Cryptography;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Wire;
using Serval.Wire.Pcap;
using Xunit;

namespace Serval.Tests;

/// <summary>Raw IP protocol 144 on loopback. Needs root or CAP_NET_RAW (CI has it); skipped otherwise.</summary>
[Trait("Tier", "netns")]
public sealed class RawIpTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.raw.echo");

    private static void RequireRawIp() =>
        Assert.SkipUnless(RawIpLink.IsSupported, "Raw IP protocol 144 needs Linux with root or CAP_NET_RAW; run the tests as root to include these.");

    private static ValueTask<ServalHost> RawHostAsync(string name, ServalLink? link = null, LinkAddress defaultRouter = default, EngineOptions? engine = null) =>
        ServalHost.StartAsync(new ServalHostOptions
        {
            Name = name,
            Links = [link ?? new RawIpLink(TestNet.NextAddress())],
            Engine = engine ?? TestNet.FastEngine,
            DefaultRouter = defaultRouter,
        });

    [Fact]
    public async Task Stream_transfer_over_raw_ip()
    {
        RequireRawIp();
        var ct = TestNet.Timeout(60);
        await using var server = await RawHostAsync("raw-server");
        await using var client = await RawHostAsync("raw-client");
        await using var listener = await StreamTests.EchoServerAsync(server, Echo, ct);
        var (sent, received) = await StreamTests.TransferAsync(client, Echo, 4 * 1024 * 1024, ct, server.Address());
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
        Assert.Equal(0, client.Counters.BadTransportChecksum);
        Assert.Equal(0, server.Counters.Malformed);
    }

    [Fact]
    public async Task Raw_ip_through_a_service_router()
    {
        RequireRawIp();
        var ct = TestNet.Timeout(60);
        await using var router = await RawHostAsync("raw-router", engine: TestNet.FastEngine with { Mode = EngineMode.ServiceRouter });
        await using var server = await RawHostAsync("raw-server");
        await using var client = await RawHostAsync("raw-client", defaultRouter: router.Address());
        await router.AddRuleAsync(ServicePrefix.Exact(Echo), router.ForwardTo(server.Address()), cancellationToken: ct);
        await using var listener = await StreamTests.EchoServerAsync(server, Echo, ct);
        var (sent, received) = await StreamTests.TransferAsync(client, Echo, 1024 * 1024, ct);
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
        Assert.True(router.Counters.Forwarded >= 1, $"the router forwarded {router.Counters.Forwarded}");
        Assert.Equal(router.Counters.Forwarded, router.Counters.PacketsReceived);
    }

    [Fact]
    public async Task Raw_ip_datagrams_and_a_pcap_with_the_reference_layout()
    {
        RequireRawIp();
        var ct = TestNet.Timeout(30);
        var capture = new MemoryStream();
        var service = ServiceId.FromName("test.raw.dgram");
        await using var server = await RawHostAsync("raw-server");
        await using (var client = await RawHostAsync("raw-client", new PcapCaptureLink(new RawIpLink(TestNet.NextAddress()), capture, leaveOpen: true)))
        {
            await client.AddRuleAsync(ServicePrefix.Exact(service), client.ForwardTo(server.Address()), cancellationToken: ct);
            await using var b = await ServalDatagramSocket.BindAsync(server, ServicePrefix.Exact(service), ct);
            await using var a = await ServalDatagramSocket.BindAsync(client, cancellationToken: ct);
            await a.SendToAsync(service, new byte[] { 1, 2, 3 }, ct);
            var r = await b.ReceiveFromAsync(new byte[10], ct);
            Assert.Equal(3, r.ReceivedBytes);
            Assert.True(r.SourceAddress.SameAddress(client.Address()));
        }

        capture.Position = 0;
        using var reader = new PcapReader(capture);
        Assert.True(reader.TryRead(out var record));
        Assert.True(SalFrame.TryLocate(record.LinkType, record.Data, out var frame));
        Assert.False(frame.UdpEncapsulated);
        Assert.Equal(ServalInfo.IPProtocolNumber, record.Data[9]);
        Assert.True(SalPacketRepr.TryParse(record.Data.AsSpan(frame.SalOffset, frame.SalLength), out var p, out _, out _, out _));
        Assert.Equal(service, p.DestinationService);
        Assert.Equal(SalPacketRepr.ProtocolUdp, p.Protocol);
    }

    [Fact]
    public async Task Streams_and_datagrams_over_raw_ipv6_in_a_namespace()
    {
        RequireRawIp();
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(60);
        await using var ns = NetNamespace.Create("raw6");

        // Two IPv6 addresses on the namespace's loopback (no duplicate address detection, so usable at once).
        var serverAddress = IPAddress.Parse("fd00:5e7a::1");
        var clientAddress = IPAddress.Parse("fd00:5e7a::2");
        ns.SetLink("lo", true);
        ns.Ip("-6", "addr", "add", $"{serverAddress}/128", "dev", "lo", "nodad");
        ns.Ip("-6", "addr", "add", $"{clientAddress}/128", "dev", "lo", "nodad");

        var capture = new MemoryStream();
        await using var server = await RawHostAsync("raw6-server", ns.Invoke<ServalLink>(() => new RawIpLink(serverAddress)));
        await using var client = await RawHostAsync("raw6-client", new PcapCaptureLink(ns.Invoke(() => new RawIpLink(clientAddress)), capture, leaveOpen: true));
        Assert.Equal(1460, server.Links[0].Mtu);

        // The stream's packets, both directions and the close, as the namespace's loopback carries them (each seen
        // leaving and arriving), checked independently against the reference's layout (IPv6 as over IPv4).
        using var tap = ns.Invoke(() => PacketTap.OnInterfaces(LinkAddress.FromIPAddress(serverAddress), LinkAddress.FromIPAddress(clientAddress)));
        await using var listener = await StreamTests.EchoServerAsync(server, Echo, ct);
        var (sent, received) = await StreamTests.TransferAsync(client, Echo, 2 * 1024 * 1024, ct, server.Address());
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
        Assert.True(await TestNet.EventuallyAsync(async () => await client.GetFlowCountAsync(ct) == 0 && await server.GetFlowCountAsync(ct) == 0, seconds: 10), "the connection did not close");
        tap.Dispose();
        Assert.True(tap.Failures.Count == 0, string.Join("\n", tap.Failures));
        Assert.All(tap.Packets, p => Assert.True(p.IPv6, "an IPv4 packet between IPv6 addresses"));
        RawIpLayoutTests.AssertReferenceLayout(tap.Packets, requireEveryKind: true, minConnections: 1);
        RawIpLayoutTests.AssertReferenceIPLayout(tap.Packets, "tcp_basic.pcap");

        var service = ServiceId.FromName("test.raw6.dgram");
        await client.AddRuleAsync(ServicePrefix.Exact(service), client.ForwardTo(server.Address()), cancellationToken: ct);
        await using var b = await ServalDatagramSocket.BindAsync(server, ServicePrefix.Exact(service), ct);
        await using var a = await ServalDatagramSocket.BindAsync(client, cancellationToken: ct);
        var payload = RandomNumberGenerator.GetBytes(1200);
        await a.SendToAsync(service, payload, ct);
        var buffer = new byte[2000];
        var r = await b.ReceiveFromAsync(buffer, ct);
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(buffer.AsSpan(0, r.ReceivedBytes)));
        Assert.True(r.SourceAddress.SameAddress(client.Address()));
        Assert.Equal(0, client.Counters.BadTransportChecksum);
        Assert.Equal(0, server.Counters.Malformed);

        // Every captured packet is IPv6 with next header 144 between the two addresses, and carries a SAL header.
        await client.DisposeAsync();
        capture.Position = 0;
        using var reader = new PcapReader(capture);
        var packets = 0;
        while (reader.TryRead(out var record))
        {
            packets++;
            Assert.Equal(6, record.Data[0] >> 4);
            Assert.Equal(ServalInfo.IPProtocolNumber, record.Data[6]);
            Assert.True(SalFrame.TryLocate(record.LinkType, record.Data, out var frame));
            Assert.False(frame.UdpEncapsulated);
            Assert.True(SalPacketRepr.TryParse(record.Data.AsSpan(frame.SalOffset, frame.SalLength), out _, out _, out _, out _));
        }

        Assert.True(packets > 1000, $"only {packets} packets captured");
    }

    [Fact]
    public void Raw_ip_support_is_reported()
    {
        if (!RawIpLink.IsSupported)
        {
            Assert.Throws<PlatformNotSupportedException>(() => new RawIpLink(TestNet.NextAddress()));
            return;
        }

        using var link = new RawIpLink(TestNet.NextAddress());
        Assert.Equal(0, link.LocalAddress.Port);
    }
}
