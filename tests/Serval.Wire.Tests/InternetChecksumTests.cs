using Xunit;

namespace Serval.Wire.Tests;

/// <summary>The word-parallel and vector checksum paths against a plain RFC 1071 sum.</summary>
public sealed class InternetChecksumTests
{
    private static ushort Reference(ReadOnlySpan<byte> data)
    {
        ulong sum = 0;
        for (var i = 0; i < data.Length; i += 2)
        {
            sum += (uint)((data[i] << 8) | (i + 1 < data.Length ? data[i + 1] : 0));
        }

        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    [Fact]
    public void Matches_the_plain_sum_for_every_length_and_alignment()
    {
        var random = new Random(11);
        var buffer = new byte[4200];
        for (var length = 0; length <= 1600; length += length < 200 ? 1 : 37)
        {
            for (var offset = 0; offset < 4; offset++)
            {
                random.NextBytes(buffer);
                var data = buffer.AsSpan(offset, length);
                Assert.Equal(Reference(data), InternetChecksum.Compute(data));
            }
        }

        // All ones: the most carries.
        Array.Fill(buffer, (byte)0xFF);
        Assert.Equal(Reference(buffer), InternetChecksum.Compute(buffer));
    }

    [Fact]
    public void Pieces_add_up_to_the_whole()
    {
        var data = new byte[1500];
        new Random(3).NextBytes(data);
        var sum = InternetChecksum.Add(InternetChecksum.Add(0, data.AsSpan(0, 700)), data.AsSpan(700));
        Assert.Equal(Reference(data), InternetChecksum.Finish(sum));
    }
}
