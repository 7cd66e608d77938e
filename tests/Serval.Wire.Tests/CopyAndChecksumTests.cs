using Xunit;

namespace Serval.Wire.Tests;

/// <summary>
/// The copy with the checksum folded in (<see cref="InternetChecksum.CopyAndAdd"/>) and the transport checksum filled
/// from a payload sum: the same bytes and the same field as a copy followed by <see cref="InternetChecksum.Add(ulong, ReadOnlySpan{byte})"/>
/// and <see cref="SalPacketRepr.Emit"/>.
/// </summary>
public sealed class CopyAndChecksumTests
{
    [Fact]
    public void CopyAndAdd_copies_and_sums_like_Add_for_every_length_and_alignment()
    {
        var random = new Random(11);
        var source = new byte[4096 + 64];
        random.NextBytes(source);
        foreach (var length in Enumerable.Range(0, 300).Concat([511, 512, 513, 1023, 1448, 1460, 4096]))
        {
            for (var offset = 0; offset < 8; offset++)
            {
                var from = source.AsSpan(offset, length);
                var to = new byte[length + 16];
                var sum = InternetChecksum.CopyAndAdd(7, from, to.AsSpan(3));
                Assert.True(from.SequenceEqual(to.AsSpan(3, length)), $"copy differs at length {length}, offset {offset}");
                Assert.True(to.AsSpan(0, 3).IndexOfAnyExcept((byte)0) < 0 && to.AsSpan(3 + length).IndexOfAnyExcept((byte)0) < 0, $"wrote outside the copy at length {length}");
                var expected = InternetChecksum.Add(7, from);
                Assert.True(InternetChecksum.Fold(sum) == InternetChecksum.Fold(expected), $"sum {InternetChecksum.Fold(sum):x4} != {InternetChecksum.Fold(expected):x4} at length {length}, offset {offset}");
            }
        }
    }

    [Fact]
    public void CopyAndAdd_refuses_a_short_destination() =>
        Assert.Throws<ArgumentException>(() => InternetChecksum.CopyAndAdd(0, new byte[10], new byte[9]));

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(536)]
    [InlineData(1427)]
    [InlineData(1428)]
    public void A_segment_filled_from_its_payload_sum_is_byte_identical_to_Emit(int payloadLength)
    {
        var payload = new byte[payloadLength];
        new Random(payloadLength).NextBytes(payload);
        var repr = new SalPacketRepr
        {
            SourceFlow = new FlowId(0x01020304),
            DestinationFlow = new FlowId(0x0a0b0c0d),
            Protocol = SalPacketRepr.ProtocolTcp,
            Tcp = new TcpRepr
            {
                SequenceNumber = 0xfffffff0,
                AckNumber = 12345,
                Flags = TcpFlags.Ack | TcpFlags.Psh,
                Window = 501,
                Timestamp = new TcpTimestamp(0x11223344, 0x55667788),
            },
        };
        foreach (var pseudo in new[]
        {
            TransportPseudoHeader.ForLink(LinkAddress.Parse("10.0.0.1"), LinkAddress.Parse("10.0.0.2")),
            TransportPseudoHeader.ForLink(LinkAddress.Parse("192.168.1.1:54325"), LinkAddress.Parse("192.168.1.2:54325")),
            TransportPseudoHeader.ForLink(LinkAddress.Parse("fd00::1"), LinkAddress.Parse("fd00::2")),
        })
        {
            var expected = new byte[2048];
            var n = repr.Emit(expected, payload, pseudo);
            var actual = new byte[2048];
            var hl = repr.EmitHeaders(actual, payloadLength);
            var sum = InternetChecksum.CopyAndAdd(0, payload, actual.AsSpan(hl));
            repr.FillTransportChecksum(actual.AsSpan(0, hl + payloadLength), pseudo, hl, sum);
            Assert.Equal(n, hl + payloadLength);
            Assert.Equal(Convert.ToHexString(expected, 0, n), Convert.ToHexString(actual, 0, n));
        }
    }
}
