using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>The transport's internal stores: the byte ring and the out-of-order range set.</summary>
public sealed class StreamBufferTests
{
    [Fact]
    public void Ring_keeps_bytes_at_their_offsets_across_wrap_and_growth()
    {
        var ring = new ByteRing(100_000);
        var reference = new byte[1_000_000];
        new Random(5).NextBytes(reference);
        long written = 0, read = 0;
        var random = new Random(6);
        var buffer = new byte[100_000];
        while (read < reference.Length)
        {
            var room = (int)Math.Min(ring.Base + ring.Limit - written, reference.Length - written);
            var n = random.Next(0, room + 1);
            ring.Write(written, reference.AsSpan((int)written, n));
            written += n;
            var m = random.Next(0, (int)(written - read) + 1);
            ring.Read(read, buffer.AsSpan(0, m));
            Assert.True(reference.AsSpan((int)read, m).SequenceEqual(buffer.AsSpan(0, m)));
            read += m;
            ring.Release(read);
        }

        Assert.True(ring.Capacity <= 131_072);
    }

    [Fact]
    public void Ring_accepts_writes_out_of_order_within_its_window()
    {
        var ring = new ByteRing(50_000);
        ring.Write(30_000, [1, 2, 3]);
        ring.Write(0, [9]);
        var b = new byte[3];
        ring.Read(30_000, b);
        Assert.Equal([1, 2, 3], b);
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.Write(49_999, [1, 2]));
    }

    [Fact]
    public void Ring_grows_lazily()
    {
        var ring = new ByteRing(1 << 20);
        Assert.Equal(0, ring.Capacity);
        ring.Write(0, new byte[10]);
        Assert.Equal(16 * 1024, ring.Capacity);
    }

    [Fact]
    public void Range_set_merges_overlapping_and_adjacent_ranges()
    {
        var set = new RangeSet(16);
        Assert.True(set.Add(10, 20));
        Assert.True(set.Add(30, 40));
        Assert.True(set.Add(50, 60));
        Assert.Equal(3, set.Count);
        Assert.True(set.Add(20, 30)); // Adjacent on both sides.
        Assert.Equal(2, set.Count);
        Assert.Equal((10L, 40L), set[0]);
        Assert.True(set.Add(5, 70));
        Assert.Equal(1, set.Count);
        Assert.Equal((5L, 70L), set[0]);
        Assert.Equal(0, set.IndexOf(5));
        Assert.Equal(-1, set.IndexOf(70));
    }

    [Fact]
    public void Range_set_refuses_a_new_range_when_full_but_still_merges()
    {
        var set = new RangeSet(2);
        Assert.True(set.Add(0, 1));
        Assert.True(set.Add(10, 11));
        Assert.False(set.Add(20, 21));
        Assert.True(set.Add(11, 12));
        Assert.Equal((10L, 12L), set[1]);
        set.RemoveFirst();
        Assert.Equal(1, set.Count);
        Assert.True(set.Add(20, 21));
    }

    [Fact]
    public void Range_set_agrees_with_a_naive_model()
    {
        var random = new Random(11);
        var set = new RangeSet(1000);
        var model = new bool[2000];
        for (var i = 0; i < 500; i++)
        {
            var start = random.Next(0, 1990);
            var end = start + random.Next(1, 10);
            set.Add(start, end);
            for (var k = start; k < end; k++)
            {
                model[k] = true;
            }
        }

        for (var p = 0; p < model.Length; p++)
        {
            Assert.Equal(model[p], set.IndexOf(p) >= 0);
        }

        for (var r = 1; r < set.Count; r++)
        {
            Assert.True(set[r - 1].End < set[r].Start);
        }
    }
}
