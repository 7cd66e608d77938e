using Serval.Wire;
using Xunit;

namespace Serval.Wire.Tests;

public sealed class ServiceIdTests
{
    [Fact]
    public void Decimal_form_is_big_endian_in_bytes_0_to_3()
    {
        var id = ServiceId.Parse("16385");
        var bytes = id.ToArray();
        Assert.Equal(new byte[] { 0x00, 0x00, 0x40, 0x01 }, bytes[..4]);
        Assert.All(bytes[4..], b => Assert.Equal(0, b));
        Assert.Equal("16385", id.ToString("d", null));
        Assert.Equal("0000400100000000000000000000000000000000000000000000000000000000", id.ToString());
    }

    [Fact]
    public void Hex_0x_form_is_left_aligned_and_odd_nibble_is_high()
    {
        var id = ServiceId.Parse("0x0000005");
        Assert.Equal(new byte[] { 0, 0, 0, 0x50, 0 }, id.ToArray()[..5]);
        Assert.Equal("0x0000005", id.ToString("s", null));
        Assert.Equal(id, ServiceId.Parse(id.ToString("s", null)));
    }

    [Fact]
    public void Full_hex_round_trips()
    {
        var id = ServiceId.FromName("echo");
        Assert.Equal(id, ServiceId.Parse(id.ToString()));
        Assert.Equal(id, ServiceId.Parse(id.ToString("X", null)));
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("0x", "0x must be followed")]
    [InlineData("0xzz", "not a hex digit")]
    [InlineData("4294967296", "out of range")]
    [InlineData("12ab", "expected 64 hex digits")]
    public void Bad_text_is_rejected_with_a_reason(string text, string reason)
    {
        Assert.False(ServiceId.TryParse(text, out _, out var why));
        Assert.Contains(reason, why, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => ServiceId.Parse(text));
    }

    [Fact]
    public void Bits_are_msb_first()
    {
        var id = ServiceId.Parse("0x80");
        Assert.True(id.GetBit(0));
        Assert.False(id.GetBit(1));
        var id2 = ServiceId.Zero.WithBit(255, true);
        Assert.Equal(1, id2.ToArray()[31]);
        Assert.Equal(1UL, id2.GetBits(192, 64));
        Assert.Equal(0x8UL, id.GetBits(0, 4));
    }

    [Fact]
    public void Ordering_is_bytewise()
    {
        var a = ServiceId.Parse("0x01");
        var b = ServiceId.Parse("0x0101");
        var c = ServiceId.Parse("0x02");
        Assert.True(a < b);
        Assert.True(b < c);
        Assert.Equal(0, a.CompareTo(ServiceId.Parse("0x0100")));
    }

    [Fact]
    public void Prefix_is_canonical_and_contains()
    {
        var p = ServicePrefix.Parse("0xffff/12");
        Assert.Equal(ServiceId.Parse("0xfff0"), p.Id);
        Assert.Equal(p, new ServicePrefix(ServiceId.Parse("0xfff7"), 12));
        Assert.True(p.Contains(ServiceId.Parse("0xfff0abcd")));
        Assert.False(p.Contains(ServiceId.Parse("0xffe0")));
        Assert.True(ServicePrefix.Default.Contains(ServiceId.FromName("x")));
        Assert.Equal(256, ServicePrefix.Parse("16385").Length);
        Assert.Equal("0x00004001/32", new ServicePrefix(ServiceId.FromNumber(16385), 32).ToString("s", null));
        Assert.False(ServicePrefix.TryParse("0x12/257", out _, out var why));
        Assert.Contains("0 to 256", why, StringComparison.Ordinal);
    }

    [Fact]
    public void Name_under_prefix_keeps_prefix_bits()
    {
        var p = new ServicePrefix(ServiceId.Parse("0xabcd"), 16);
        var id = ServiceId.FromName(p, "kv/shard-1");
        Assert.True(p.Contains(id));
        Assert.Equal(ServiceId.FromName("kv/shard-1").Truncate(256).GetBits(16, 64), id.GetBits(16, 64));
    }
}
