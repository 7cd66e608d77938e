using Serval.Wire;
using Xunit;

namespace Serval.Wire.Tests;

/// <summary>Each header and extension: parse a byte literal, emit into a buffer pre-filled with 0xA5, compare.</summary>
public sealed class ByteLiteralTests
{
    private static readonly TransportPseudoHeader RefPseudo = new(LinkAddress.Parse("10.202.1.1"), LinkAddress.Parse("10.202.1.2"));

    private static byte[] Hex(string s) => Convert.FromHexString(s.Replace(" ", string.Empty, StringComparison.Ordinal));

    private static byte[] Filled(int n)
    {
        var b = new byte[n];
        b.AsSpan().Fill(0xA5);
        return b;
    }

    // The reference's SYN (tcp_basic.pcap frame 3), from the SAL header on.
    private const string ReferenceSyn =
        "00000002 00000000 11 06 6c2d" +
        "1014 8000 cb30011d 00000000 1b8a2cc0f4ca892d" +
        "2024 0000 0000400100000000000000000000000000000000000000000000000000000000" +
        "00000000 ab505383 00000000 7002 0000 6dc0 0000 020405a8 01030301";

    [Fact]
    public void Sal_syn_with_control_service_and_tcp_options()
    {
        var bytes = Hex(ReferenceSyn);
        Assert.True(SalPacketRepr.TryParse(bytes, out var p, out var off, out var len, out _));
        Assert.Equal(new SalControl(SalControlFlags.Syn, 0xcb30011d, 0, new Nonce(0x1b8a2cc0f4ca892d)), p.Control);
        Assert.Equal(ServiceId.FromNumber(16385), p.DestinationService);
        Assert.Equal((ushort)1448, p.Tcp.MaxSegmentSize);
        Assert.Equal((byte)1, p.Tcp.WindowScale);
        Assert.Equal(bytes.Length, off);
        Assert.Equal(0, len);
        var buf = Filled(bytes.Length + 8);
        Assert.Equal(bytes.Length, p.Emit(buf, [], RefPseudo));
        Assert.Equal(bytes, buf[..bytes.Length]);
        Assert.All(buf[bytes.Length..], b => Assert.Equal(0xA5, b));
    }

    [Fact]
    public void Sal_base_header_view()
    {
        var bytes = Hex("00000003 00000002 03 06 fcf4");
        Assert.True(SalHeaderView.TryCreate(bytes, out var v, out _));
        Assert.Equal(new FlowId(3), v.SourceFlow);
        Assert.Equal(new FlowId(2), v.DestinationFlow);
        Assert.Equal(12, v.HeaderLength);
        Assert.Equal(6, v.Protocol);
        Assert.True(v.VerifyChecksum());
        v.DestinationFlow = new FlowId(9);
        v.FillChecksum();
        Assert.True(v.VerifyChecksum());
    }

    [Fact]
    public void Control_only_fin()
    {
        // tcp_basic.pcap frame 50: SAL FIN without a transport header.
        var bytes = Hex("00000003 00000002 08 06 fde1 1014 0400 3f32993c cb30011e d4692e0904073ac7");
        Assert.True(SalPacketRepr.TryParse(bytes, out var p, out _, out _, out _));
        Assert.True(p.ControlOnly);
        Assert.Equal(SalControlFlags.Fin, p.Control!.Value.Flags);
        var buf = Filled(bytes.Length + 4);
        Assert.Equal(bytes.Length, p.Emit(buf, [], RefPseudo));
        Assert.Equal(bytes, buf[..bytes.Length]);
        Assert.Equal(0xA5, buf[^1]);
    }

    [Fact]
    public void Source_extension_v4()
    {
        var ext = Hex("400c 0000 0aca0201 0aca02fe");
        var p = WithExtensionArea(ext, out var packet);
        Assert.Equal("[10.202.2.1, 10.202.2.254]", p.SourceRoute!.ToString());
        var buf = Filled(ext.Length + 2);
        Assert.Equal(ext.Length, p.SourceRoute.Emit(buf));
        Assert.Equal(ext, buf[..ext.Length]);
        Assert.Equal(0xA5, buf[^1]);
        Assert.Equal(packet, Reemit(p));
    }

    [Fact]
    public void Source6_extension()
    {
        var ext = Hex("5024 0000 20010db8000000000000000000000001 20010db8000000000000000000000002");
        var p = WithExtensionArea(ext, out var packet);
        Assert.True(p.SourceRoute!.IsIPv6);
        Assert.Equal("[2001:db8::1, 2001:db8::2]", p.SourceRoute.ToString());
        Assert.Equal(packet, Reemit(p));
    }

    [Fact]
    public void Service_pair_for_unconnected_datagram()
    {
        var ext = Hex("2024 0000 " + new string('1', 64) + " 2024 0000 " + new string('2', 64));
        var p = WithExtensionArea(ext, out var packet, protocol: 17);
        Assert.Equal(ServiceId.Parse(new string('1', 64)), p.DestinationService);
        Assert.Equal(ServiceId.Parse(new string('2', 64)), p.SourceService);
        Assert.Equal(packet, Reemit(p));
    }

    [Fact]
    public void Path_probe_extension()
    {
        var ext = Hex("600c 0100 0102030405060708");
        var p = WithExtensionArea(ext, out var packet);
        Assert.Equal(new SalPathProbe(true, 0x0102030405060708), p.PathProbe);
        var buf = Filled(14);
        Assert.Equal(12, p.PathProbe!.Value.Emit(buf));
        Assert.Equal(ext, buf[..12]);
        Assert.Equal(0xA5, buf[12]);
        Assert.Equal(packet, Reemit(p));
    }

    [Fact]
    public void Pad_and_address_are_parsed_and_skipped()
    {
        var ext = Hex("00 00 00 00 300c 0000 00000001 00000002");
        var p = WithExtensionArea(ext, out _);
        Assert.Null(p.Control);
        Assert.Null(p.SourceRoute);
        Assert.Equal(12, p.SalHeaderLength);
    }

    [Fact]
    public void Tcp_header_with_sack_and_timestamps()
    {
        var bytes = Hex("0000 0000 00000064 000000c8 d0 10 ffff 0000 0000" +
                        "0101 080a 00000001 00000002 0101 0512 00000100 00000200 00000300 00000400");
        Assert.True(TcpRepr.TryParse(bytes, out var t, out var hl, out _));
        Assert.Equal(52, hl);
        Assert.Equal(new TcpTimestamp(1, 2), t.Timestamp);
        Assert.Equal(2, t.SackBlocks.Count);
        Assert.Equal(new TcpSackBlock(0x300, 0x400), t.SackBlocks[1]);
        var buf = Filled(56);
        Assert.Equal(52, t.Emit(buf));
        Assert.Equal(bytes, buf[..52]);
        Assert.All(buf[52..], b => Assert.Equal(0xA5, b));
    }

    [Fact]
    public void Tcp_syn_with_every_option()
    {
        var bytes = Hex("0000 0000 00000001 00000000 a0 02 ffff 0000 0000" +
                        "020405b4 0402 080a 00000007 00000000 0103 0307");
        Assert.True(TcpRepr.TryParse(bytes, out var t, out var hl, out _));
        Assert.Equal(40, hl);
        Assert.True(t.SackPermitted);
        Assert.Equal((byte)7, t.WindowScale);
        Assert.Equal((ushort)1460, t.MaxSegmentSize);
        var buf = Filled(44);
        t.Emit(buf);
        Assert.Equal(bytes, buf[..40]);
        Assert.Equal(0xA5, buf[40]);
    }

    [Fact]
    public void Unknown_tcp_options_and_eol_are_skipped()
    {
        // Option kind 30 (MPTCP) length 4, then EOL and padding.
        var bytes = Hex("0000 0000 00000001 00000000 70 10 ffff 0000 0000 1e04abcd 00000000");
        Assert.True(TcpRepr.TryParse(bytes, out var t, out var hl, out _));
        Assert.Equal(28, hl);
        Assert.Null(t.MaxSegmentSize);
    }

    [Fact]
    public void Udp_header_in_reference_datagram()
    {
        // udp_basic.pcap frame 6: "hello".
        var bytes = Hex("00000002 00000003 03 11 fce9 0000 0000 000d a46b 68656c6c6f");
        Assert.True(SalPacketRepr.TryParse(bytes, out var p, out var off, out var len, out _));
        Assert.True(p.Udp.HasChecksum);
        Assert.Equal("hello", System.Text.Encoding.ASCII.GetString(bytes, off, len));
        Assert.True(SalPacketRepr.VerifyTransportChecksum(bytes, RefPseudo));
        var buf = Filled(bytes.Length + 1);
        Assert.Equal(bytes.Length, p.Emit(buf, bytes.AsSpan(off, len), RefPseudo));
        Assert.Equal(bytes, buf[..bytes.Length]);
        Assert.Equal(0xA5, buf[^1]);
    }

    [Fact]
    public void Ipv4_header()
    {
        var bytes = Hex("4500 0074 08ef 0000 4090 5975 0aca0101 0aca0102");
        Assert.True(Ipv4Repr.TryParse([.. bytes, .. new byte[96]], out var ip, out var hl, out var len, out _));
        Assert.Equal(20, hl);
        Assert.Equal(96, len);
        Assert.Equal(144, ip.Protocol);
        var buf = Filled(24);
        ip.Emit(buf, 96);
        Assert.Equal(bytes, buf[..20]);
        Assert.All(buf[20..], b => Assert.Equal(0xA5, b));
    }

    [Fact]
    public void Ipv6_header()
    {
        var bytes = Hex("60000000 0004 90 40 20010db8000000000000000000000001 20010db8000000000000000000000002 00000000");
        Assert.True(Ipv6Repr.TryParse(bytes, out var ip, out var len, out _));
        Assert.Equal(4, len);
        Assert.Equal(144, ip.NextHeader);
        var buf = Filled(44);
        ip.Emit(buf, 4);
        Assert.Equal(bytes[..40], buf[..40]);
        Assert.All(buf[40..], b => Assert.Equal(0xA5, b));
    }

    [Fact]
    public void Ipv6_pseudo_header_checksum_verifies()
    {
        var ph = new TransportPseudoHeader(LinkAddress.Parse("2001:db8::1"), LinkAddress.Parse("2001:db8::2"));
        var p = new SalPacketRepr { SourceFlow = new FlowId(5), DestinationFlow = new FlowId(6), Protocol = 6, Tcp = new TcpRepr { Flags = TcpFlags.Ack, SequenceNumber = 9 } };
        var buf = new byte[100];
        var n = p.Emit(buf, [1, 2, 3, 4, 5], ph);
        Assert.True(SalPacketRepr.VerifyTransportChecksum(buf.AsSpan(0, n), ph));
        Assert.False(SalPacketRepr.VerifyTransportChecksum(buf.AsSpan(0, n), RefPseudo));
    }

    /// <summary>Builds a UDP SAL packet whose extension area is <paramref name="ext"/>, and parses it.</summary>
    internal static SalPacketRepr WithExtensionArea(byte[] ext, out byte[] packet, byte protocol = 6)
    {
        packet = BuildRaw(ext, protocol);
        Assert.True(SalPacketRepr.TryParse(packet, out var p, out _, out _, out var error), error.ToString());
        return p;
    }

    internal static byte[] BuildRaw(byte[] ext, byte protocol = 6, bool fixChecksum = true)
    {
        var sal = 12 + ext.Length;
        var packet = new byte[sal + (protocol == 6 ? 20 : 8)];
        packet[3] = 1;
        packet[8] = (byte)(sal / 4);
        packet[9] = protocol;
        ext.CopyTo(packet, 12);
        if (protocol == 6)
        {
            packet[sal + 12] = 0x50;
        }
        else
        {
            packet[sal + 5] = 8;
        }

        if (fixChecksum)
        {
            var ck = InternetChecksum.Compute(packet.AsSpan(0, sal));
            packet[10] = (byte)(ck >> 8);
            packet[11] = (byte)ck;
        }

        return packet;
    }

    private static byte[] Reemit(SalPacketRepr p)
    {
        var buf = new byte[p.GetLength(0)];
        p.EmitHeaders(buf, 0);
        return buf;
    }
}
