namespace Serval.Stack.Streams;

/// <summary>
/// The retransmission queue: transmitted, unacknowledged segments in sequence order, contiguous in sequence
/// space, held in a ring of structs that grows geometrically (never per segment in steady state).
/// </summary>
internal sealed class SentSegmentQueue
{
    private const int FirstCapacity = 8;

    private SentSegment[] _items = [];
    private int _head;

    /// <summary>Number of segments.</summary>
    public int Count { get; private set; }

    /// <summary>Segment <paramref name="index"/> (0 = oldest) by reference.</summary>
    public ref SentSegment this[int index] => ref _items[(_head + index) & (_items.Length - 1)];

    /// <summary>The oldest segment.</summary>
    public ref SentSegment First => ref this[0];

    /// <summary>The newest segment.</summary>
    public ref SentSegment Last => ref this[Count - 1];

    /// <summary>Appends a segment.</summary>
    public void Add(in SentSegment segment)
    {
        if (Count == _items.Length)
        {
            Grow();
        }

        this[Count] = segment;
        Count++;
    }

    /// <summary>Removes the oldest segment.</summary>
    public void RemoveFirst()
    {
        _head = (_head + 1) & (_items.Length - 1);
        Count--;
    }

    /// <summary>Removes everything.</summary>
    public void Clear()
    {
        _head = 0;
        Count = 0;
    }

    /// <summary>Index of the segment containing <paramref name="position"/>, or -1 (segments are contiguous and sorted).</summary>
    public int IndexOf(long position)
    {
        if (Count == 0 || position < First.Start || position >= Last.End)
        {
            return -1;
        }

        var lo = 0;
        var hi = Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) >>> 1;
            if (this[mid].Start <= position)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return lo;
    }

    /// <summary>
    /// Splits segment <paramref name="index"/> so that its first part has <paramref name="firstLength"/> sequence
    /// octets; both parts keep the transmission record. Rare (path MSS shrank), so the shift is fine.
    /// </summary>
    public void Split(int index, int firstLength)
    {
        if (Count == _items.Length)
        {
            Grow();
        }

        for (var i = Count; i > index + 1; i--)
        {
            this[i] = this[i - 1];
        }

        Count++;
        ref var a = ref this[index];
        var b = a;
        b.Start = a.Start + firstLength;
        b.Length = a.Length - firstLength;
        a.Length = firstLength;
        a.Flags &= ~SentSegmentFlags.Fin;
        this[index + 1] = b;
    }

    /// <summary>Bytes of storage held (for memory accounting).</summary>
    public int StorageBytes => _items.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<SentSegment>();

    /// <summary>Gives the storage back when the queue is empty (an idle connection); it is allocated again on use.</summary>
    public void ReleaseStorage()
    {
        if (Count == 0)
        {
            _items = [];
            _head = 0;
        }
    }

    private void Grow()
    {
        var grown = new SentSegment[Math.Max(FirstCapacity, _items.Length * 2)];
        for (var i = 0; i < Count; i++)
        {
            grown[i] = this[i];
        }

        _items = grown;
        _head = 0;
    }
}
