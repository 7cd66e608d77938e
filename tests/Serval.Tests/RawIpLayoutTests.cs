using Serval.Links;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Wire compatibility of the raw-IP link with the reference implementation: a whole stream connection (handshake,
/// data both ways, TCP and SAL close) captured on the client and checked packet by packet with
/// <see cref="ReferenceLayout"/> against the reference capture <c>tcp_basic.pcap</c> (and <c>sr_syn_b.pcap</c> for the
/// SYN-ACK with a SOURCE extension), IPv4 headers included. The checker itself is tested on the reference captures and
/// on damaged packets. Through a service router: <see cref="NetnsServiceRouterTests"/>.
/// </summary>
public sealed class RawIpLayoutTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.raw.layout");

    internal static string ReferencePath(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", name);

    internal static List<ReferenceLayout.Packet> ReferencePackets(string name)
    {
        using var file = File.OpenRead(ReferencePath(name));
        return [.. ReferenceLayout.ReadIPPackets(file).Select(p => ReferenceLayout.Check(p))];
    }

    /// <summary>
    /// Asserts that every packet's shape is one the reference has for the same kind, that the conversations follow the
    /// reference's control arithmetic, and (when <paramref name="requireEveryKind"/>) that every kind of packet of the
    /// reference stream transfer occurs.
    /// </summary>
    internal static void AssertReferenceLayout(IReadOnlyList<ReferenceLayout.Packet> ours, bool requireEveryKind, int minConnections)
    {
        var reference = ReferencePackets("tcp_basic.pcap").Concat(ReferencePackets("sr_syn_b.pcap"))
            .GroupBy(p => p.Kind).ToDictionary(g => g.Key, g => g.Select(p => p.Shape).ToHashSet(StringComparer.Ordinal));
        foreach (var group in ours.GroupBy(p => p.Kind))
        {
            Assert.True(reference.TryGetValue(group.Key, out var shapes), $"the reference never sends a {group.Key}");
            foreach (var shape in group.Select(p => p.Shape).Distinct())
            {
                Assert.True(shapes.Contains(shape), $"{group.Key} has the shape '{shape}'; the reference's are: {string.Join(" | ", shapes)}");
            }
        }

        if (requireEveryKind)
        {
            var missing = Enum.GetValues<ReferenceLayout.Kind>().Where(k => !ours.Any(p => p.Kind == k)).ToList();
            Assert.True(missing.Count == 0, $"no {string.Join(", ", missing)} in the capture");
        }

        Assert.True(ReferenceLayout.CheckConversations(ours) >= minConnections, "fewer connections (SYNs) than expected in the capture");
    }

    /// <summary>
    /// Asserts that the IPv4 headers of <paramref name="ours"/> (<see cref="ReferenceLayout.IPShape"/>: first packet or
    /// not, from whom to whom, TTL) are exactly those of the reference capture taken at the same place of the same
    /// topology: <c>tcp_basic.pcap</c> for two hosts on one link, <c>sr_syn_a.pcap</c> on the client's link and
    /// <c>sr_syn_b.pcap</c> on the server's link of client — service router — server.
    /// </summary>
    internal static void AssertReferenceIPLayout(IReadOnlyList<ReferenceLayout.Packet> ours, string referenceCapture)
    {
        var reference = ReferencePackets(referenceCapture);
        var expected = IPShapes(reference);
        var actual = IPShapes(ours);
        Assert.True(
            expected.SetEquals(actual),
            $"IPv4 headers differ from {referenceCapture}: ours {string.Join(" | ", actual.Order(StringComparer.Ordinal))}; the reference's {string.Join(" | ", expected.Order(StringComparer.Ordinal))}");
    }

    internal static HashSet<string> IPShapes(IReadOnlyList<ReferenceLayout.Packet> packets)
    {
        var roles = ReferenceLayout.Roles(packets);
        return packets.Select(p => ReferenceLayout.IPShape(p, roles)).ToHashSet(StringComparer.Ordinal);
    }

    [Fact]
    public void The_reference_captures_pass_the_layout_check()
    {
        var packets = ReferencePackets("tcp_basic.pcap");
        Assert.Equal(53, packets.Count);
        AssertReferenceLayout(packets, requireEveryKind: true, minConnections: 1);
        Assert.Equal(1, ReferenceLayout.CheckConversations(ReferencePackets("sr_syn_b.pcap")));
        Assert.Equal(1, ReferenceLayout.CheckConversations(ReferencePackets("sr_syn_a.pcap")));

        // The IPv4 headers: every packet the reference originates has TTL 64; each IP hop takes one off, and so does its
        // service router (the forwarded SYN keeps the client's source and arrives with 63, sr_syn_b.pcap frame 3).
        Assert.Equal(["flow client->server ttl=64", "flow server->client ttl=64", "syn client->server ttl=64"], IPShapes(packets).Order(StringComparer.Ordinal));
        Assert.Equal(["flow client->server ttl=64", "flow server->client ttl=63", "syn client->router ttl=64"], IPShapes(ReferencePackets("sr_syn_a.pcap")).Order(StringComparer.Ordinal));
        Assert.Equal(["flow client->server ttl=63", "flow server->client ttl=64", "syn client->server ttl=63"], IPShapes(ReferencePackets("sr_syn_b.pcap")).Order(StringComparer.Ordinal));
        Assert.Equal(1, ReferenceLayout.CheckForwardedHopLimits(ReferencePackets("sr_syn_a.pcap"), ReferencePackets("sr_syn_b.pcap")));
    }

    /// <summary>The reference's forwarded SYN (sr_syn_b.pcap frame 3) as IPv4 bytes, and its position in the capture.</summary>
    private static (byte[] Packet, int Index) ReferenceForwardedSyn()
    {
        using var file = File.OpenRead(ReferencePath("sr_syn_b.pcap"));
        var packets = ReferenceLayout.ReadIPPackets(file);
        var i = packets.FindIndex(p => ReferenceLayout.Check(p) is { Kind: ReferenceLayout.Kind.Syn, SourceRoute.Count: > 0 });
        Assert.True(i >= 0);
        return (packets[i], i);
    }

    private static void RefreshIPChecksum(byte[] ip)
    {
        ip[10] = ip[11] = 0;
        var sum = ReferenceLayout.Checksum(0, ip.AsSpan(0, 20));
        (ip[10], ip[11]) = ((byte)(sum >> 8), (byte)sum);
    }

    [Fact]
    public void A_forwarded_syn_from_the_routers_address_or_with_the_clients_ttl_fails_the_check()
    {
        // The defect: the router's kernel wrote the router's address (10.202.3.254) as the IP source. The checker
        // says so (and the TCP checksum, computed for the client's source, would fail against it too).
        var (syn, _) = ReferenceForwardedSyn();
        var fromRouter = (byte[])syn.Clone();
        (fromRouter[12], fromRouter[13], fromRouter[14], fromRouter[15]) = ((byte)10, (byte)202, (byte)3, (byte)254);
        RefreshIPChecksum(fromRouter);
        Assert.Contains("SOURCE[0]", Assert.Throws<LayoutException>(() => ReferenceLayout.Check(fromRouter)).Message, StringComparison.Ordinal);

        // The client's source, but a TCP checksum computed for the router's address: the receiver's check fails.
        var wrongSum = (byte[])syn.Clone();
        var segment = wrongSum.AsSpan(20 + 80);
        segment[16] = segment[17] = 0;
        var pseudo = 0x0acaUL + 0x03fe + 0x0aca + 0x0301 + 6 + (ulong)segment.Length; // 10.202.3.254 → 10.202.3.1
        var tcpSum = ReferenceLayout.Checksum(pseudo, segment);
        (segment[16], segment[17]) = ((byte)(tcpSum >> 8), (byte)tcpSum);
        Assert.Contains("TCP checksum", Assert.Throws<LayoutException>(() => ReferenceLayout.Check(wrongSum)).Message, StringComparison.Ordinal);

        // A router that does not decrement the TTL: the packet is well formed, but its IPv4 header is not the
        // reference's on that link, and its TTL is not the client's minus one.
        using var file = File.OpenRead(ReferencePath("sr_syn_b.pcap"));
        var serverSide = ReferenceLayout.ReadIPPackets(file).Select(p => ReferenceLayout.Check(p)).ToList();
        var (_, index) = ReferenceForwardedSyn();
        serverSide[index] = serverSide[index] with { Ttl = 64 };
        Assert.Throws<LayoutException>(() => ReferenceLayout.CheckForwardedHopLimits(ReferencePackets("sr_syn_a.pcap"), serverSide));
        Assert.Contains("syn client->server ttl=64", IPShapes(serverSide));
        Assert.False(IPShapes(serverSide).SetEquals(IPShapes(ReferencePackets("sr_syn_b.pcap"))));
    }

    /// <summary>
    /// The reference's IPv4 packet rewritten, by hand, as the same packet over raw IPv6: a 40-byte header (no
    /// extension headers), IPv4 addresses mapped to fd00::a.b.c.d, SOURCE as SOURCE6, checksums recomputed (the TCP
    /// checksum over the IPv6 pseudo-header unless <paramref name="ipv4PseudoHeader"/>).
    /// </summary>
    private static byte[] AsIPv6(byte[] ipv4, byte hopLimit, bool ipv4PseudoHeader = false, bool keepSourceAsIPv4 = false)
    {
        static void Mapped(Span<byte> to, ReadOnlySpan<byte> v4)
        {
            to.Clear();
            to[0] = 0xfd;
            v4.CopyTo(to[12..]);
        }

        var sal4 = ipv4.AsSpan(20);
        var salLength4 = sal4[8] * 4;
        var sal = new List<byte>(sal4[..12].ToArray());
        for (var at = 12; at < salLength4;)
        {
            var length = sal4[at + 1];
            if (sal4[at] >> 4 == 4 && !keepSourceAsIPv4)
            {
                var n = (length - 4) / 4;
                var ext = new byte[4 + (16 * n)];
                ext[0] = 5 << 4;
                ext[1] = (byte)ext.Length;
                for (var i = 0; i < n; i++)
                {
                    Mapped(ext.AsSpan(4 + (16 * i), 16), sal4.Slice(at + 4 + (4 * i), 4));
                }

                sal.AddRange(ext);
            }
            else
            {
                sal.AddRange(sal4.Slice(at, length).ToArray());
            }

            at += length;
        }

        var salLength = sal.Count;
        sal.AddRange(sal4[salLength4..].ToArray());
        var packet = new byte[40 + sal.Count];
        packet[0] = 0x60;
        (packet[4], packet[5]) = ((byte)(sal.Count >> 8), (byte)sal.Count);
        packet[6] = ServalInfo.IPProtocolNumber;
        packet[7] = hopLimit;
        Mapped(packet.AsSpan(8, 16), ipv4.AsSpan(12, 4));
        Mapped(packet.AsSpan(24, 16), ipv4.AsSpan(16, 4));
        sal.CopyTo(packet, 40);
        var s = packet.AsSpan(40);
        s[8] = (byte)(salLength / 4);
        s[10] = s[11] = 0;
        var salSum = ReferenceLayout.Checksum(0, s[..salLength]);
        (s[10], s[11]) = ((byte)(salSum >> 8), (byte)salSum);
        var segment = s[salLength..];
        if (segment.Length == 0)
        {
            return packet; // a control-only SAL packet: no transport header
        }

        segment[16] = segment[17] = 0;

        // The MSS option is 20 bytes smaller over IPv6 (a 20-byte longer IP header on the same path).
        for (var i = 20; i + 1 < (segment[12] >> 4) * 4 && segment[i] != 0; i += segment[i] == 1 ? 1 : segment[i + 1])
        {
            if (segment[i] == 2)
            {
                var mss = ((segment[i + 2] << 8) | segment[i + 3]) - 20;
                (segment[i + 2], segment[i + 3]) = ((byte)(mss >> 8), (byte)mss);
            }
        }

        var addresses = ipv4PseudoHeader ? ipv4.AsSpan(12, 8) : packet.AsSpan(8, 32);
        var pseudo = 0UL;
        for (var i = 0; i < addresses.Length; i += 2)
        {
            pseudo += (ulong)((addresses[i] << 8) | addresses[i + 1]);
        }

        var tcpSum = ReferenceLayout.Checksum(pseudo + 6 + (ulong)segment.Length, segment);
        (segment[16], segment[17]) = ((byte)(tcpSum >> 8), (byte)tcpSum);
        return packet;
    }

    [Fact]
    public void Over_ipv6_the_check_applies_the_same_rules_and_reduces_to_the_ipv4_shape()
    {
        // The reference's forwarded SYN and its stream as they would be over IPv6 pass, with the IPv4 shapes.
        var (syn, _) = ReferenceForwardedSyn();
        var v4 = ReferenceLayout.Check(syn);
        var v6 = ReferenceLayout.Check(AsIPv6(syn, hopLimit: 63));
        Assert.True(v6.IPv6);
        Assert.Equal(v4.Shape, v6.Shape);
        Assert.Equal((63, 2), (v6.Ttl, v6.SourceRoute.Count));
        using (var file = File.OpenRead(ReferencePath("tcp_basic.pcap")))
        {
            var stream = ReferenceLayout.ReadIPPackets(file);
            var shapes4 = stream.Select(p => ReferenceLayout.Check(p).Shape).ToList();
            var shapes6 = stream.Select(p => ReferenceLayout.Check(AsIPv6(p, hopLimit: 64)).Shape).ToList();
            Assert.Equal(shapes4, shapes6);
        }

        // What the IPv6 check refuses: hop limit 0, a TCP checksum over an IPv4 pseudo-header, SOURCE (IPv4 addresses)
        // in an IPv6 packet, a forwarded SYN from the router's address, a payload length that is not the packet's.
        Assert.Contains("hop limit is 0", Assert.Throws<LayoutException>(() => ReferenceLayout.Check(AsIPv6(syn, hopLimit: 0))).Message, StringComparison.Ordinal);
        Assert.Contains("IPv6 header", Assert.Throws<LayoutException>(() => ReferenceLayout.Check(AsIPv6(syn, 63, ipv4PseudoHeader: true))).Message, StringComparison.Ordinal);
        Assert.Contains("SOURCE (IPv4 addresses)", Assert.Throws<LayoutException>(() => ReferenceLayout.Check(AsIPv6(syn, 63, keepSourceAsIPv4: true))).Message, StringComparison.Ordinal);
        var fromRouter = (byte[])syn.Clone();
        (fromRouter[12], fromRouter[13], fromRouter[14], fromRouter[15]) = ((byte)10, (byte)202, (byte)3, (byte)254);
        Assert.Contains("SOURCE[0]", Assert.Throws<LayoutException>(() => ReferenceLayout.Check(AsIPv6(fromRouter, 63))).Message, StringComparison.Ordinal);
        var longer = AsIPv6(syn, 63);
        longer[5]++;
        Assert.Contains("payload length", Assert.Throws<LayoutException>(() => ReferenceLayout.Check(longer)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 0x46, "version/IHL")] // an IP option word
    [InlineData(9, 6, "IP protocol")] // plain TCP instead of protocol 144
    [InlineData(20 + 9, 17, "SAL protocol")]
    [InlineData(20 + 12 + 3, 1, "CONTROL reserved")]
    [InlineData(20 + 32 + 2, 1, "SERVICE reserved")]
    [InlineData(20 + 68 + 1, 80, "TCP ports")]
    [InlineData(20 + 68 + 12, 0x71, "TCP reserved")]
    public void A_damaged_reference_packet_fails_the_layout_check(int offset, byte value, string what)
    {
        using var file = File.OpenRead(ReferencePath("tcp_basic.pcap"));
        var syn = ReferenceLayout.ReadIPPackets(file)[0];
        Assert.Equal(ReferenceLayout.Kind.Syn, ReferenceLayout.Check(syn).Kind);
        syn[offset] = value;

        // Refresh the IPv4 and SAL checksums so that the damage itself is what the check finds.
        syn[10] = syn[11] = 0;
        var ipSum = ReferenceLayout.Checksum(0, syn.AsSpan(0, 20));
        (syn[10], syn[11]) = ((byte)(ipSum >> 8), (byte)ipSum);
        syn[20 + 10] = syn[20 + 11] = 0;
        var salSum = ReferenceLayout.Checksum(0, syn.AsSpan(20, 68));
        (syn[30], syn[31]) = ((byte)(salSum >> 8), (byte)salSum);
        var e = Assert.Throws<LayoutException>(() => ReferenceLayout.Check(syn));
        Assert.Contains(what, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_packet_with_a_bad_checksum_or_length_fails_the_layout_check()
    {
        using var file = File.OpenRead(ReferencePath("tcp_basic.pcap"));
        var packets = ReferenceLayout.ReadIPPackets(file);
        var data = packets.First(p => p.Length > 1000);
        data[^1] ^= 0x40; // payload byte: TCP checksum
        Assert.Contains("TCP checksum", Assert.Throws<LayoutException>(() => ReferenceLayout.Check(data)).Message, StringComparison.Ordinal);
        var ack = packets[2];
        ack[20 + 8] = 16; // SAL header length 64 instead of 68: the SERVICE extension overruns it
        Assert.Throws<LayoutException>(() => ReferenceLayout.Check(ack));

        // A conversation whose SYN-ACK acknowledges the wrong verno.
        var checkedPackets = ReferencePackets("tcp_basic.pcap");
        var synAck = checkedPackets.First(p => p.Kind == ReferenceLayout.Kind.SynAck);
        checkedPackets[checkedPackets.IndexOf(synAck)] = synAck with { Ackno = synAck.Ackno + 1 };
        Assert.Throws<LayoutException>(() => ReferenceLayout.CheckConversations(checkedPackets));
    }

    [Fact]
    public async Task A_stream_transfer_over_raw_ip_has_the_reference_layout_packet_by_packet()
    {
        Assert.SkipUnless(RawIpLink.IsSupported, "Raw IP protocol 144 needs Linux with root or CAP_NET_RAW; run the tests as root to include this test.");
        var ct = TestNet.Timeout(30);
        var capture = new MemoryStream();
        var clientAddress = TestNet.NextAddress();
        var serverAddress = TestNet.NextAddress();

        // Besides the capture link, a raw protocol-144 socket sees the packets with the kernel's own IPv4 headers.
        using var tap = PacketTap.Raw144(LinkAddress.FromIPAddress(clientAddress), LinkAddress.FromIPAddress(serverAddress));
        await using (var server = await ServalHost.StartAsync(new ServalHostOptions { Name = "layout-server", Links = [new RawIpLink(serverAddress)], Engine = TestNet.FastEngine }, ct))
        await using (var client = await ServalHost.StartAsync(
            new ServalHostOptions { Name = "layout-client", Links = [new PcapCaptureLink(new RawIpLink(clientAddress), capture, leaveOpen: true)], Engine = TestNet.FastEngine },
            ct))
        await using (var listener = await StreamTests.EchoServerAsync(server, Echo, ct))
        {
            var (sent, received) = await StreamTests.TransferAsync(client, Echo, 300_000, ct, server.Address());
            Assert.Equal(sent, received);

            // The SAL close (FIN, ACK both ways) ends both flows; TIME-WAIT is short in these engines.
            Assert.True(await TestNet.EventuallyAsync(async () => await client.GetFlowCountAsync(ct) == 0 && await server.GetFlowCountAsync(ct) == 0), $"flows left after 10 s: client {await client.GetFlowCountAsync(ct)}, server {await server.GetFlowCountAsync(ct)}");
        }

        capture.Position = 0;
        var packets = ReferenceLayout.ReadIPPackets(capture);
        Assert.True(packets.Count > 2 * 300_000 / 1448, $"only {packets.Count} packets captured");
        var ours = packets.Select(p => ReferenceLayout.Check(p)).ToList();
        Assert.All(ours, p => Assert.False(p.UdpEncapsulated));
        AssertReferenceLayout(ours, requireEveryKind: true, minConnections: 1);
        Assert.Equal(1, ReferenceLayout.CheckConversations(ours));
        AssertReferenceIPLayout(ours, "tcp_basic.pcap");

        tap.Dispose();
        Assert.Empty(tap.Failures);
        Assert.True(tap.Seen >= packets.Count, $"the raw tap saw {tap.Seen} packets, the capture link {packets.Count}");
        AssertReferenceLayout(tap.Packets, requireEveryKind: true, minConnections: 1);
        AssertReferenceIPLayout(tap.Packets, "tcp_basic.pcap");
    }
}
