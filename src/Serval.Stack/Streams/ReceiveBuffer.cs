using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>
/// The receive side's data: the receive buffer and its reassembly of out-of-order data (RFC 9293 §3.10.7.4), the
/// receive sequence space (RCV.NXT, what the application read, the peer's FIN), the SACK blocks and D-SACK we report
/// (RFC 2018 §4, RFC 2883), and the window we advertise with receiver-side silly window avoidance (RFC 9293 §3.8.6.2.2).
/// Positions count octets from the peer's SYN (position 0); the connection maps them to sequence numbers. When to
/// acknowledge is the connection's decision (<see cref="Store"/> says what a segment did).
/// </summary>
internal sealed class ReceiveBuffer
{
    /// <summary>SACK blocks remembered in most-recent-first order (RFC 2018 §4).</summary>
    public const int MaxSackRecent = 4;

    private readonly ByteRing _ring;
    private readonly RangeSet _outOfOrder;
    private readonly int _size;
    private readonly long[] _sackRecent = new long[MaxSackRecent];
    private int _sackRecentCount;
    private bool _dsackPending;
    private long _dsackStart;
    private long _dsackEnd;
    private long _lastAdvertisedRight;

    /// <summary>Creates an empty buffer of <paramref name="size"/> bytes (allocated as data arrives).</summary>
    public ReceiveBuffer(int size)
    {
        _size = size;
        _ring = new ByteRing(size);
        _outOfOrder = new RangeSet(Math.Clamp(size / 512, 16, 4096));
    }

    /// <summary>RCV.NXT as a position: 0 until the peer's SYN is accepted.</summary>
    public long Next { get; private set; }

    /// <summary>Position of the peer's FIN once a FIN arrived in order, else -1.</summary>
    public long FinPosition { get; private set; } = -1;

    /// <summary>The peer's FIN arrived in order and was consumed.</summary>
    public bool FinReceived { get; private set; }

    /// <summary>Report duplicates with D-SACK and SACK blocks (SACK was negotiated).</summary>
    public bool SackEnabled { get; set; }

    /// <summary>Position after the last in-order data byte (the FIN excluded).</summary>
    public long InOrderDataEnd => FinReceived ? Next - 1 : Math.Max(Next, 1);

    /// <summary>In-order bytes the application has not read.</summary>
    public int BytesAvailable => (int)(InOrderDataEnd - 1 - ReadOffset);

    /// <summary>Stream offset of the next byte the application reads.</summary>
    public long ReadOffset { get; private set; }

    /// <summary>First position we cannot store (the buffer full).</summary>
    public long Limit => 1 + ReadOffset + _size;

    /// <summary>The receive window now: room between RCV.NXT and <see cref="Limit"/>.</summary>
    public long Window => Math.Max(0, Limit - Next);

    /// <summary>Out-of-order ranges held.</summary>
    public int OutOfOrderCount => _outOfOrder.Count;

    /// <summary>SACK blocks the next ACK would like to carry (out-of-order ranges, plus a pending D-SACK).</summary>
    public int SackBlocksWanted => _outOfOrder.Count + (_dsackPending ? 1 : 0);

    /// <summary>Bytes of storage held (data and out-of-order ranges).</summary>
    public int StorageBytes => _ring.Capacity + _outOfOrder.StorageBytes;

    /// <summary>Whether storage is held and nothing in it is waiting (everything received was read, no gap is open).</summary>
    public bool CanReleaseStorage => StorageBytes > 0 && _ring.IsEmpty && _outOfOrder.Count == 0;

    /// <summary>Gives the storage back when nothing is waiting in it; returns the bytes released.</summary>
    public int ReleaseStorage()
    {
        if (_outOfOrder.Count != 0)
        {
            return 0;
        }

        var released = _outOfOrder.StorageBytes;
        _outOfOrder.ReleaseStorage();
        return released + _ring.ReleaseStorage();
    }

    /// <summary>The peer's SYN was accepted: RCV.NXT is just past it.</summary>
    public void Open() => Next = 1;

    /// <summary>Our SYN or SYN-ACK advertised <paramref name="window"/> (unscaled).</summary>
    public void OnHandshakeWindow(ushort window) => _lastAdvertisedRight = 1 + window;

    /// <summary>
    /// Stores a data segment at <paramref name="segPos"/> (what fits the buffer and precedes the FIN), reporting any
    /// part received before with D-SACK; <paramref name="stored"/> is the count of new bytes in order (for the
    /// delayed-ACK policy).
    /// </summary>
    public ReceiveOutcome Store(long segPos, ReadOnlySpan<byte> payload, out long stored)
    {
        stored = 0;
        var start = segPos;
        var end = segPos + payload.Length;
        if (FinPosition >= 0 && end > FinPosition)
        {
            end = FinPosition;
        }

        if (start < Next)
        {
            ReportDuplicate(start, Math.Min(end, Next));
            start = Next;
        }

        var limit = Limit;
        if (end > limit)
        {
            end = limit;
        }

        if (start >= end)
        {
            return ReceiveOutcome.Duplicate;
        }

        _ring.Write(start - 1, payload.Slice((int)(start - segPos), (int)(end - start)));
        if (start == Next)
        {
            Next = end;
            var filled = false;
            while (_outOfOrder.Count > 0 && _outOfOrder[0].Start <= Next)
            {
                Next = Math.Max(Next, _outOfOrder[0].End);
                _outOfOrder.RemoveFirst();
                filled = true;
            }

            stored = end - start;
            return filled || _outOfOrder.Count > 0 ? ReceiveOutcome.InOrderWithGaps : ReceiveOutcome.InOrder;
        }

        var holder = _outOfOrder.IndexOf(start);
        if (holder >= 0 && _outOfOrder[holder].End >= end)
        {
            ReportDuplicate(start, end);
        }
        else if (_outOfOrder.Add(start, end))
        {
            RememberSackBlock(start);
        }

        return ReceiveOutcome.OutOfOrder;
    }

    /// <summary>
    /// A FIN on a segment ending at <paramref name="segmentEnd"/>: it counts only exactly in order (every byte before it
    /// arrived and none beyond it). Returns whether it was consumed (RCV.NXT moved past it).
    /// </summary>
    public bool TryAcceptFin(long segmentEnd)
    {
        if (FinPosition >= 0 || segmentEnd != Next)
        {
            return false;
        }

        FinPosition = Next;
        Next++;
        FinReceived = true;
        return true;
    }

    /// <summary>Copies up to <paramref name="buffer"/>.Length in-order bytes out; returns the count.</summary>
    public int Read(Span<byte> buffer)
    {
        var n = Math.Min(buffer.Length, BytesAvailable);
        if (n <= 0)
        {
            return 0;
        }

        _ring.Read(ReadOffset, buffer[..n]);
        ReadOffset += n;
        _ring.Release(ReadOffset);
        return n;
    }

    /// <summary>Forgets out-of-order data; with <paramref name="discardUnread"/> also what the application did not read.</summary>
    public void Clear(bool discardUnread)
    {
        _outOfOrder.Clear();
        if (discardUnread)
        {
            ReadOffset = InOrderDataEnd - 1;
            _ring.Release(ReadOffset);
        }
    }

    /// <summary>Reports duplicate data in the next ACK's first SACK block (D-SACK, RFC 2883).</summary>
    public void ReportDuplicate(long start, long end)
    {
        if (SackEnabled && end > start)
        {
            _dsackPending = true;
            _dsackStart = start;
            _dsackEnd = end;
        }
    }

    /// <summary>
    /// The SACK option for the next segment, at most <paramref name="maxBlocks"/> blocks: a pending D-SACK first, then
    /// the most recently changed ranges, then the others in order. <paramref name="irs"/> maps positions to sequence numbers.
    /// </summary>
    public TcpSackBlocks BuildSackBlocks(uint irs, int maxBlocks)
    {
        var blocks = TcpSackBlocks.Empty;
        if (!SackEnabled)
        {
            return blocks;
        }

        if (_dsackPending)
        {
            _dsackPending = false;
            blocks = blocks.Add(new TcpSackBlock(unchecked(irs + (uint)_dsackStart), unchecked(irs + (uint)_dsackEnd)));
            maxBlocks--;
        }

        if (_outOfOrder.Count == 0)
        {
            return blocks;
        }

        Span<int> used = stackalloc int[TcpSackBlocks.MaxBlocks];
        var count = 0;
        for (var i = 0; i < _sackRecentCount && count < maxBlocks; i++)
        {
            var index = _outOfOrder.IndexOf(_sackRecent[i]);
            if (index < 0 || used[..count].Contains(index))
            {
                continue;
            }

            used[count++] = index;
            var r = _outOfOrder[index];
            blocks = blocks.Add(new TcpSackBlock(unchecked(irs + (uint)r.Start), unchecked(irs + (uint)r.End)));
        }

        for (var index = 0; index < _outOfOrder.Count && count < maxBlocks; index++)
        {
            if (used[..count].Contains(index))
            {
                continue;
            }

            used[count++] = index;
            var r = _outOfOrder[index];
            blocks = blocks.Add(new TcpSackBlock(unchecked(irs + (uint)r.Start), unchecked(irs + (uint)r.End)));
        }

        return blocks;
    }

    /// <summary>
    /// The window field to send (scaled by <paramref name="shift"/>), recording the right edge it advertises. The right
    /// edge only moves by at least min(buffer / 2, <paramref name="mss"/>).
    /// </summary>
    public ushort AdvertiseWindow(int shift, int mss)
    {
        var right = Math.Max(Limit, Next);
        var threshold = Math.Min(_size / 2, mss);
        if (right > _lastAdvertisedRight && right - _lastAdvertisedRight < threshold && _lastAdvertisedRight >= Next)
        {
            right = _lastAdvertisedRight;
        }

        var window = Math.Min((right - Next) >> shift, ushort.MaxValue);
        var advertised = Next + (window << shift);
        if (advertised > _lastAdvertisedRight)
        {
            _lastAdvertisedRight = advertised;
        }

        return (ushort)window;
    }

    /// <summary>Whether reading opened the window enough to be worth a window update (min(buffer / 2, MSS), and doubled).</summary>
    public bool WindowUpdateDue(int mss)
    {
        var current = Math.Max(0, _lastAdvertisedRight - Next);
        var possible = Window;
        var minIncrease = Math.Min(_size / 2, mss);
        return possible - current >= minIncrease && possible >= 2 * current;
    }

    private void RememberSackBlock(long start)
    {
        // Most recent first (RFC 2018 §4); drop positions whose block merged with this one.
        var index = _outOfOrder.IndexOf(start);
        var n = 0;
        for (var i = 0; i < _sackRecentCount; i++)
        {
            var p = _sackRecent[i];
            if (p >= Next && _outOfOrder.IndexOf(p) is var j && j >= 0 && j != index)
            {
                _sackRecent[n++] = p;
            }
        }

        if (n == MaxSackRecent)
        {
            n--;
        }

        for (var i = n; i > 0; i--)
        {
            _sackRecent[i] = _sackRecent[i - 1];
        }

        _sackRecent[0] = start;
        _sackRecentCount = n + 1;
    }
}

/// <summary>What <see cref="ReceiveBuffer.Store"/> did with a segment.</summary>
internal enum ReceiveOutcome
{
    /// <summary>Nothing new (all received before, or nothing fits).</summary>
    Duplicate,

    /// <summary>New data in order, no gap left or filled.</summary>
    InOrder,

    /// <summary>New data in order that filled a gap, or with gaps still open beyond it.</summary>
    InOrderWithGaps,

    /// <summary>New data beyond a gap, kept for reassembly.</summary>
    OutOfOrder,
}
