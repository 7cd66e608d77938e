using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>The send buffer's copy with the checksum summed in, across the ring's wrap at odd and even splits.</summary>
public sealed class ByteRingSumTests
{
    [Fact]
    public void ReadWithSum_copies_and_sums_like_Read_then_Add_across_the_wrap()
    {
        var ring = new ByteRing(ByteRing.InitialCapacity);
        var random = new Random(3);
        var data = new byte[ByteRing.InitialCapacity];
        long written = 0;
        for (var round = 0; round < 200; round++)
        {
            // Keep the ring nearly full so reads often straddle the end of its storage.
            var n = random.Next(1, 3000);
            ring.Release(Math.Max(ring.Base, written + n - ring.Limit));
            random.NextBytes(data.AsSpan(0, n));
            ring.Write(written, data.AsSpan(0, n));
            written += n;
            var length = (int)Math.Min(random.Next(0, 1500), written - ring.Base);
            var offset = written - length;
            var expected = new byte[length];
            ring.Read(offset, expected);
            var actual = new byte[length];
            var sum = ring.ReadWithSum(offset, actual);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"copy differs at offset {offset}, length {length}");
            var want = InternetChecksum.Fold(InternetChecksum.Add(0, expected));
            Assert.True(InternetChecksum.Fold(sum) == want, $"sum {InternetChecksum.Fold(sum):x4} != {want:x4} at offset {offset} (slot {offset % ring.Capacity}), length {length}");
        }
    }
}
