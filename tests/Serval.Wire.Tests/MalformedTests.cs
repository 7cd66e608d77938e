using Serval.Wire;
using Xunit;

namespace Serval.Wire.Tests;

/// <summary>Malformed input is rejected with a reason, never an exception.</summary>
public sealed class MalformedTests
{
    private static byte[] Hex(string s) => Convert.FromHexString(s.Replace(" ", string.Empty, StringComparison.Ordinal));

    private static WireError Reject(byte[] packet)
    {
        Assert.False(SalPacketRepr.TryParse(packet, out _, out _, out _, out var error));
        return error;
    }

    private static byte[] Ext(string hex, byte protocol = 6) => ByteLiteralTests.BuildRaw(Hex(hex), protocol);

    private static readonly string Control = "1014 8000 00000001 00000000 0102030405060708";

    [Fact]
    public void Truncated_base_header() => Assert.Equal(WireError.Truncated, Reject(Hex("00000001 00000000 03 06")));

    [Fact]
    public void Header_length_below_minimum() => Assert.Equal(WireError.BadHeaderLength, Reject(Hex("00000001 00000000 02 06 0000 00000000")));

    [Fact]
    public void Header_length_beyond_buffer() => Assert.Equal(WireError.BadHeaderLength, Reject(Hex("00000001 00000000 09 06 0000 00000000")));

    [Fact]
    public void Bad_sal_checksum()
    {
        var p = Ext(Control);
        p[10] ^= 0xFF;
        Assert.Equal(WireError.BadSalChecksum, Reject(p));
    }

    [Fact]
    public void Unknown_transport()
    {
        var p = ByteLiteralTests.BuildRaw(Hex(Control), protocol: 6);
        p[9] = 99;
        var ck = InternetChecksum.Compute(p.AsSpan(0, 32).ToArray().Select((b, i) => i is 10 or 11 ? (byte)0 : b).ToArray());
        p[10] = (byte)(ck >> 8);
        p[11] = (byte)ck;
        Assert.Equal(WireError.UnknownTransport, Reject(p));
    }

    [Fact]
    public void Too_many_extensions() => Assert.Equal(WireError.TooManyExtensions, Reject(Ext("00000000 00000000 000000 " + "00")));

    [Fact]
    public void Nine_extensions_including_pads_are_accepted()
    {
        Assert.True(SalPacketRepr.TryParse(Ext("00000000 00000000" + Control), out var p, out _, out _, out var e), e.ToString());
        Assert.Equal(SalControlFlags.Syn, p.Control!.Value.Flags);
    }

    [Fact]
    public void Duplicate_control() => Assert.Equal(WireError.DuplicateControl, Reject(Ext(Control + Control)));

    [Fact]
    public void Third_service() => Assert.Equal(
        WireError.TooManyServices,
        Reject(Ext(string.Concat(Enumerable.Repeat("2024 0000 " + new string('a', 64), 3)))));

    [Fact]
    public void Second_source() => Assert.Equal(WireError.DuplicateSource, Reject(Ext("400c 0000 01020304 05060708 400c 0000 01020304 05060708")));

    [Fact]
    public void Source_with_one_address() => Assert.Equal(WireError.BadSourceAddressCount, Reject(Ext("4008 0000 01020304")));

    [Fact]
    public void Source_with_ragged_length() => Assert.Equal(WireError.BadExtensionLength, Reject(Ext("400e 0000 01020304 05060708 0000 0000")));

    [Fact]
    public void Control_with_wrong_length() => Assert.Equal(WireError.BadExtensionLength, Reject(Ext("1018 8000 00000001 00000000 0102030405060708 00000000")));

    [Fact]
    public void Extension_running_past_header() => Assert.Equal(WireError.BadExtensionLength, Reject(Ext("2024 0000")));

    [Fact]
    public void Extension_length_below_two() => Assert.Equal(WireError.BadExtensionLength, Reject(Ext("1001 0000")));

    [Fact]
    public void Unknown_extension_type() => Assert.Equal(WireError.UnknownExtension, Reject(Ext("7004 0000")));

    [Fact]
    public void Second_path_probe() => Assert.Equal(WireError.DuplicatePathProbe, Reject(Ext("600c 0000 0000000000000001 600c 0100 0000000000000001")));

    [Fact]
    public void Path_probe_with_wrong_length() => Assert.Equal(WireError.BadExtensionLength, Reject(Ext("6008 0000 00000000")));

    [Fact]
    public void Leftover_single_byte_is_malformed() => Assert.Equal(WireError.BadExtensionLength, Reject(Ext("000000 10")));

    [Fact]
    public void Truncated_tcp_header()
    {
        var p = Ext(Control);
        Assert.Equal(WireError.Truncated, Reject(p[..(p.Length - 5)]));
    }

    [Fact]
    public void Tcp_data_offset_too_small()
    {
        var p = Ext(Control);
        p[32 + 12] = 0x40;
        Assert.Equal(WireError.BadDataOffset, Reject(p));
    }

    [Fact]
    public void Truncated_tcp_option()
    {
        // MSS option claiming 4 bytes with only 2 left in the options area.
        Assert.False(TcpRepr.TryParse(Hex("0000 0000 00000001 00000000 60 02 ffff 0000 0000 0101 0204"), out _, out _, out var e));
        Assert.Equal(WireError.BadTcpOption, e);
    }

    [Fact]
    public void Tcp_option_kind_without_length()
    {
        Assert.False(TcpRepr.TryParse(Hex("0000 0000 00000001 00000000 60 02 ffff 0000 0000 010101 02"), out _, out _, out var e));
        Assert.Equal(WireError.BadTcpOption, e);
    }

    [Fact]
    public void Mss_option_with_wrong_length()
    {
        Assert.False(TcpRepr.TryParse(Hex("0000 0000 00000001 00000000 60 02 ffff 0000 0000 02030500"), out _, out _, out var e));
        Assert.Equal(WireError.BadTcpOption, e);
    }

    [Fact]
    public void Udp_length_beyond_datagram()
    {
        var p = Ext(Control, protocol: 17);
        p[32 + 5] = 200;
        Assert.Equal(WireError.BadUdpLength, Reject(p));
    }

    [Fact]
    public void Bad_transport_checksum_is_detected()
    {
        var ph = new TransportPseudoHeader(LinkAddress.Parse("10.0.0.1"), LinkAddress.Parse("10.0.0.2"));
        var p = new SalPacketRepr { SourceFlow = new FlowId(1), Protocol = 6, Tcp = new TcpRepr { Flags = TcpFlags.Syn } };
        var buf = new byte[64];
        var n = p.Emit(buf, [9, 9], ph);
        Assert.True(SalPacketRepr.VerifyTransportChecksum(buf.AsSpan(0, n), ph));
        buf[n - 1] ^= 1;
        Assert.False(SalPacketRepr.VerifyTransportChecksum(buf.AsSpan(0, n), ph));
    }

    [Fact]
    public void Ipv4_bad_checksum_and_version()
    {
        var h = Hex("4500 0014 0000 0000 4090 0000 0a000001 0a000002");
        Assert.False(Ipv4Repr.TryParse(h, out _, out _, out _, out var e));
        Assert.Equal(WireError.BadIPChecksum, e);
        h[0] = 0x55;
        Assert.False(Ipv4Repr.TryParse(h, out _, out _, out _, out e));
        Assert.Equal(WireError.BadIPHeader, e);
    }

    [Fact]
    public void Source_route_constructor_rejects_misuse()
    {
        Assert.Throws<ArgumentException>(() => new SalSourceRoute([LinkAddress.Parse("1.2.3.4")]));
        Assert.Throws<ArgumentException>(() => new SalSourceRoute([LinkAddress.Parse("1.2.3.4"), LinkAddress.Parse("::1")]));
        var full = new SalSourceRoute(Enumerable.Range(1, 20).Select(i => LinkAddress.FromIPv4((uint)i)));
        Assert.False(full.TryAppend(LinkAddress.FromIPv4(99), out _));
    }
}
