namespace Serval.Stack.Streams;

/// <summary>
/// A small sorted set of disjoint, non-adjacent half-open ranges [Start, End) of 64-bit positions, used for the
/// out-of-order data a receiver holds. Storage grows geometrically up to a fixed number of ranges and is then
/// reused; adding a range that would need more is refused.
/// </summary>
internal sealed class RangeSet
{
    private (long Start, long End)[] _items;
    private readonly int _maxRanges;

    /// <summary>Creates an empty set that holds at most <paramref name="maxRanges"/> ranges.</summary>
    public RangeSet(int maxRanges)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRanges, 1);
        _maxRanges = maxRanges;
        _items = [];
    }

    /// <summary>Number of ranges.</summary>
    public int Count { get; private set; }

    /// <summary>Range <paramref name="index"/> in ascending order.</summary>
    public (long Start, long End) this[int index] => index < Count ? _items[index] : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>
    /// Adds [<paramref name="start"/>, <paramref name="end"/>), merging with overlapping or adjacent ranges.
    /// Returns false (and changes nothing) when the set is full and the range touches no existing one.
    /// </summary>
    public bool Add(long start, long end)
    {
        if (start >= end)
        {
            return true;
        }

        // First range whose end reaches start (candidates for merging begin there).
        var lo = 0;
        var hi = Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_items[mid].End < start)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        var first = lo;
        var last = first;
        while (last < Count && _items[last].Start <= end)
        {
            last++;
        }

        // Ranges [first, last) overlap or touch the new one.
        if (last == first)
        {
            if (Count == _maxRanges)
            {
                return false;
            }

            if (Count == _items.Length)
            {
                Array.Resize(ref _items, Math.Min(Math.Max(8, _items.Length * 2), _maxRanges));
            }

            Array.Copy(_items, first, _items, first + 1, Count - first);
            _items[first] = (start, end);
            Count++;
            return true;
        }

        var merged = (Math.Min(start, _items[first].Start), Math.Max(end, _items[last - 1].End));
        _items[first] = merged;
        var removed = last - first - 1;
        if (removed > 0)
        {
            Array.Copy(_items, last, _items, first + 1, Count - last);
            Count -= removed;
        }

        return true;
    }

    /// <summary>Index of the range containing <paramref name="position"/>, or -1.</summary>
    public int IndexOf(long position)
    {
        var lo = 0;
        var hi = Count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var r = _items[mid];
            if (position < r.Start)
            {
                hi = mid - 1;
            }
            else if (position >= r.End)
            {
                lo = mid + 1;
            }
            else
            {
                return mid;
            }
        }

        return -1;
    }

    /// <summary>Removes the lowest range.</summary>
    public void RemoveFirst()
    {
        if (Count == 0)
        {
            return;
        }

        Array.Copy(_items, 1, _items, 0, Count - 1);
        Count--;
    }

    /// <summary>Removes every range.</summary>
    public void Clear() => Count = 0;

    /// <summary>Bytes of storage held (for memory accounting).</summary>
    public int StorageBytes => _items.Length * 16;

    /// <summary>Gives the storage back when the set is empty; it is allocated again on use.</summary>
    public void ReleaseStorage()
    {
        if (Count == 0)
        {
            _items = [];
        }
    }
}
