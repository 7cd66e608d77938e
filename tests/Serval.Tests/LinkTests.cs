using System.Security.Cryptography;
using Serval.Links;
using Serval.Wire;
using Serval.Wire.Pcap;
using Xunit;

namespace Serval.Tests;

/// <summary>The in-memory hub, the decorators and the batching switch.</summary>
public sealed class LinkTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.links.echo");

    [Fact]
    public async Task Hosts_on_a_lossy_in_memory_hub_transfer_intact()
    {
        var ct = TestNet.Timeout(60);
        var hub = new InMemoryHub(new FaultInjectionOptions { LossRate = 0.02, DuplicationRate = 0.01, Delay = TimeSpan.FromMilliseconds(1), Jitter = TimeSpan.FromMilliseconds(2), Seed = 7 });
        var a = LinkAddress.Parse("10.1.0.1:54325");
        var b = LinkAddress.Parse("10.1.0.2:54325");
        await using var server = await ServalHost.StartAsync(new ServalHostOptions { Name = "server", Links = [hub.CreateLink(a)], Engine = TestNet.FastEngine }, ct);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "client", Links = [hub.CreateLink(b)], Engine = TestNet.FastEngine, DefaultRouter = a }, ct);
        await using var listener = await StreamTests.EchoServerAsync(server, Echo, ct);
        var (sent, received) = await StreamTests.TransferAsync(client, Echo, 2 * 1024 * 1024, ct);
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
        var faults = Assert.IsType<FaultInjectionLink>(client.Links[0]);
        Assert.True(faults.PacketsDropped > 0, $"PacketsDropped {faults.PacketsDropped}");
    }

    [Fact]
    public async Task Pcap_capture_of_a_udp_transfer_decodes_as_serval()
    {
        var ct = TestNet.Timeout(30);
        var capture = new MemoryStream();
        var link = new PcapCaptureLink(TestNet.UdpLink(), capture, leaveOpen: true);
        await using var server = await TestNet.UdpHostAsync("server");
        await using (var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "client", Links = [link], Engine = TestNet.FastEngine }, ct))
        {
            await using var listener = await StreamTests.EchoServerAsync(server, Echo, ct);
            var (sent, received) = await StreamTests.TransferAsync(client, Echo, 200_000, ct, server.Address());
            Assert.Equal(sent, received);
        }

        capture.Position = 0;
        using var reader = new PcapReader(capture);
        var frames = 0;
        var syn = false;
        while (reader.TryRead(out var record))
        {
            Assert.True(SalFrame.TryLocate(record.LinkType, record.Data, out var frame));
            Assert.True(frame.UdpEncapsulated);
            var sal = record.Data.AsSpan(frame.SalOffset, frame.SalLength);
            Assert.True(SalPacketRepr.TryParse(sal, out var p, out _, out _, out _));
            Assert.True(SalPacketRepr.VerifyTransportChecksum(sal, frame.PseudoHeader));
            syn |= p.DestinationService == Echo;
            frames++;
        }

        Assert.True(syn, "the SYN names the service");
        Assert.True(frames > 100, $"{frames} frames");
    }

    [Fact]
    public async Task Managed_socket_path_works_without_batching()
    {
        var ct = TestNet.Timeout(30);
        var options = new UdpLinkOptions { UseBatching = false };
        await using var server = await TestNet.UdpHostAsync("server", link: options);
        await using var client = await TestNet.UdpHostAsync("client", link: options);
        Assert.False(((UdpLink)client.Links[0]).IsBatching);
        await using var listener = await StreamTests.EchoServerAsync(server, Echo, ct);
        var (sent, received) = await StreamTests.TransferAsync(client, Echo, 1024 * 1024, ct, server.Address());
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
    }

    [Fact]
    public void Batching_is_used_on_linux()
    {
        using var link = TestNet.UdpLink();
        Assert.Equal(OperatingSystem.IsLinux() && Environment.Is64BitProcess, link.IsBatching);
    }

    [Fact]
    public async Task Udp_over_ipv6_loopback()
    {
        var ct = TestNet.Timeout(30);
        await using var server = await ServalHost.StartAsync(new ServalHostOptions { Name = "server6", Links = [new UdpLink(System.Net.IPAddress.IPv6Loopback, 0)], Engine = TestNet.FastEngine }, ct);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "client6", Links = [new UdpLink(System.Net.IPAddress.IPv6Loopback, 0)], Engine = TestNet.FastEngine }, ct);
        await using var listener = await StreamTests.EchoServerAsync(server, Echo, ct);
        var (sent, received) = await StreamTests.TransferAsync(client, Echo, 500_000, ct, server.Address());
        Assert.Equal(sent, received);
    }
}
