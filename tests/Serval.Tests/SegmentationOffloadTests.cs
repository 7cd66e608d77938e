using System.Collections.Concurrent;
using System.Security.Cryptography;
using Serval.Links;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>UDP GSO on send and GRO on receive in the UDP link, their grouping and splitting logic, and the fallback.</summary>
public sealed class SegmentationOffloadTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.offload.echo");

    private static bool Linux64 => OperatingSystem.IsLinux() && Environment.Is64BitProcess;

    [Fact]
    public void Runs_group_same_size_datagrams_to_one_destination()
    {
        var a = LinkAddress.Parse("10.0.0.1:1");
        var b = LinkAddress.Parse("10.0.0.2:1");
        int[] lengths = [100, 100, 100, 60, 100, 100, 100, 120, 120];
        LinkAddress[] dest = [a, a, a, a, a, a, b, b, b];

        // A shorter datagram ends a run (it is included); a new destination starts a new one; a longer one too.
        Assert.Equal(4, UdpSegmentation.RunLength(lengths, dest, 0));
        Assert.Equal(2, UdpSegmentation.RunLength(lengths, dest, 4));
        Assert.Equal(1, UdpSegmentation.RunLength(lengths, dest, 6));
        Assert.Equal(2, UdpSegmentation.RunLength(lengths, dest, 7));
        Assert.Equal(1, UdpSegmentation.RunLength(lengths, dest, 8));

        // Limits: segment count and total bytes.
        var many = Enumerable.Repeat(1000, 200).ToArray();
        var same = Enumerable.Repeat(a, 200).ToArray();
        Assert.Equal(UdpSegmentation.MaxSegments, UdpSegmentation.RunLength(many, same, 0, maxBytes: int.MaxValue));
        Assert.Equal(10, UdpSegmentation.RunLength(many, same, 0, maxBytes: 10_500));
        Assert.Equal(3, UdpSegmentation.RunLength(many, same, 197));
    }

    [Fact]
    public void Split_cuts_a_coalesced_buffer_at_the_segment_size()
    {
        var buffer = new byte[1000];
        for (var i = 0; i < buffer.Length; i++)
        {
            buffer[i] = (byte)i;
        }

        var parts = new List<byte[]>();
        Assert.Equal(4, UdpSegmentation.Split(buffer, 300, parts, static (d, p) => p.Add(d.ToArray())));
        Assert.Equal([300, 300, 300, 100], parts.Select(p => p.Length));
        Assert.Equal(buffer, parts.SelectMany(p => p).ToArray());

        parts.Clear();
        Assert.Equal(1, UdpSegmentation.Split(buffer, 0, parts, static (d, p) => p.Add(d.ToArray())));
        Assert.Equal(1, UdpSegmentation.Split(buffer, 1000, parts, static (d, p) => p.Add(d.ToArray())));
        Assert.All(parts, p => Assert.Equal(1000, p.Length));
    }

    [Fact]
    public async Task Loopback_link_sends_with_gso_and_receives_with_gro_intact_and_in_order()
    {
        Assert.SkipUnless(Linux64, "UDP GSO/GRO exists on 64-bit Linux only");
        using var sender = TestNet.UdpLink();
        using var receiver = TestNet.UdpLink();
        Assert.True(sender.IsSegmentationOffloadActive, "loopback UDP supports GSO on Linux");
        Assert.True(receiver.IsReceiveOffloadActive, "loopback UDP supports GRO on Linux");
        var got = new Collector();
        receiver.Start(got);
        sender.Start(new Collector());

        // 3 bursts: 50 full-size datagrams and a short last one, then datagrams of mixed sizes.
        var sent = new List<byte[]>();
        var random = new Random(5);
        for (var burst = 0; burst < 3; burst++)
        {
            for (var i = 0; i < 51; i++)
            {
                var d = new byte[i == 50 ? 333 : 1200];
                random.NextBytes(d);
                d[0] = (byte)sent.Count;
                sent.Add(d);
                sender.Send(sender.LocalAddress, receiver.LocalAddress, d, IPHopLimit.Unknown);
            }

            foreach (var size in new[] { 700, 700, 900, 64 })
            {
                var d = new byte[size];
                random.NextBytes(d);
                sent.Add(d);
                sender.Send(sender.LocalAddress, receiver.LocalAddress, d, IPHopLimit.Unknown);
            }

            sender.Flush();
        }

        Assert.True(await got.WaitForAsync(sent.Count, TimeSpan.FromSeconds(10)), $"received {got.Packets.Count} of {sent.Count}");
        Assert.Equal(sent.Count, got.Packets.Count);
        for (var i = 0; i < sent.Count; i++)
        {
            Assert.Equal(sent[i], got.Packets.ElementAt(i));
        }

        Assert.All(got.Sources, s => Assert.Equal(sender.LocalAddress, s));
        Assert.True(sender.Counters.OffloadSends >= 3, $"{sender.Counters.OffloadSends} GSO sends");
        Assert.True(sender.Counters.SystemCalls <= 6, $"{sender.Counters.SystemCalls} send calls for {sent.Count} datagrams");
        Assert.Equal(sent.Count, sender.Counters.PacketsSent);
        Assert.Equal(sent.Sum(d => d.Length), sender.Counters.BytesSent);
        Assert.Equal(0, sender.Counters.OffloadFallbacks);
        Assert.True(receiver.Counters.CoalescedReceives > 0, "GRO coalesced the bursts on loopback");
        Assert.Equal(sent.Count, receiver.Counters.PacketsReceived);
    }

    [Fact]
    public async Task Stream_transfer_is_intact_with_and_without_offload()
    {
        var ct = TestNet.Timeout(60);
        foreach (var offload in new[] { true, false })
        {
            var options = new UdpLinkOptions { UseSegmentationOffload = offload };
            await using var server = await TestNet.UdpHostAsync("server", link: options);
            await using var client = await TestNet.UdpHostAsync("client", link: options);
            var link = (UdpLink)client.Links[0];
            Assert.Equal(offload && Linux64, link.IsSegmentationOffloadActive);
            Assert.Equal(offload && Linux64, ((UdpLink)server.Links[0]).IsReceiveOffloadActive);
            await using var listener = await StreamTests.EchoServerAsync(server, Echo, ct);
            var (sent, received) = await StreamTests.TransferAsync(client, Echo, 4 * 1024 * 1024, ct, server.Address());
            Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
            if (!offload)
            {
                Assert.Equal(0, link.Counters.OffloadSends);
                Assert.Equal(0, server.Links[0].Counters.CoalescedReceives);
            }
            else if (Linux64)
            {
                Assert.True(link.Counters.OffloadSends > 0, "a bulk upload leaves in GSO sends");
            }
        }
    }

    [Fact]
    public async Task Gso_failure_falls_back_to_one_datagram_per_message_for_good()
    {
        Assert.SkipUnless(Linux64, "UDP GSO exists on 64-bit Linux only");

        using var sender = TestNet.UdpLink();
        using var receiver = TestNet.UdpLink();
        var got = new Collector();
        receiver.Start(got);
        sender.Start(new Collector());
        Assert.True(sender.IsSegmentationOffloadActive);

        // SO_NO_CHECK (11) turns off the UDP checksum; the kernel then refuses GSO sends with EINVAL, as it refuses
        // them (EIO) on devices without checksum offload.
        Assert.True(Native.LinuxSockets.SetIntOption(sender.Io.Handle, Native.LinuxSockets.SolSocket, 11, 1, out _), "SO_NO_CHECK");
        var sent = new List<byte[]>();
        for (var i = 0; i < 20; i++)
        {
            var d = new byte[1000];
            d[0] = (byte)i;
            sent.Add(d);
            sender.Send(sender.LocalAddress, receiver.LocalAddress, d, IPHopLimit.Unknown);
        }

        sender.Flush();
        Assert.False(sender.IsSegmentationOffloadActive);
        Assert.Equal(1, sender.Counters.OffloadFallbacks);
        Assert.True(await got.WaitForAsync(sent.Count, TimeSpan.FromSeconds(10)), $"received {got.Packets.Count} of {sent.Count}");
        Assert.Equal(sent, got.Packets.ToList());
        Assert.Equal(sent.Count, sender.Counters.PacketsSent);
        Assert.Equal(0, sender.Counters.SendErrors);
    }

    private sealed class Collector : ILinkReceiver
    {
        public ConcurrentQueue<byte[]> Packets { get; } = new();

        public ConcurrentQueue<LinkAddress> Sources { get; } = new();

        public void Receive(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
        {
            Sources.Enqueue(source);
            Packets.Enqueue(packet.ToArray());
        }

        public Task<bool> WaitForAsync(int count, TimeSpan timeout) =>
            Eventually.WithinAsync(() => ValueTask.FromResult(Packets.Count >= count), timeout, TimeSpan.FromMilliseconds(10));
    }
}
