using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>
/// The sender's SACK scoreboard (RFC 2018, RFC 6675): the retransmission queue of transmitted, unacknowledged segments
/// with their flags, and the totals derived from those flags — the bytes in flight ("pipe"), the bytes SACKed, the
/// segments lost and not yet retransmitted, the segments ever retransmitted. Every flag change goes through
/// <see cref="SetFlags"/> so the totals never need a scan. It also remembers the last ACK's SACK blocks (only the new
/// part of a block seen again is scanned) and where the next lost segment is likely to be.
/// </summary>
/// <remarks>
/// It knows nothing of timers, windows or congestion: loss marking is decided by <see cref="RackLossDetector"/> and
/// <see cref="LossRecovery"/>, which call into it (docs/stream-transport.md, "Structure").
/// </remarks>
internal sealed class SackScoreboard
{
    /// <summary>SACK blocks processed per ACK.</summary>
    public const int MaxBlocks = TcpSackBlocks.MaxBlocks;

    private readonly SentSegmentQueue _sent = new();
    private readonly long[] _cacheLeft = new long[MaxBlocks];
    private readonly long[] _cacheRight = new long[MaxBlocks];
    private int _cacheCount;

    /// <summary>Number of segments held.</summary>
    public int Count => _sent.Count;

    /// <summary>Bytes of storage held by the record of segments in flight.</summary>
    public int StorageBytes => _sent.StorageBytes;

    /// <summary>Gives the record's storage back when nothing is in flight; returns the bytes released.</summary>
    public int ReleaseStorage()
    {
        var held = _sent.StorageBytes;
        _sent.ReleaseStorage();
        return held - _sent.StorageBytes;
    }

    /// <summary>Segment <paramref name="index"/> (0 = oldest) by reference; change its flags only through <see cref="SetFlags"/>.</summary>
    public ref SentSegment this[int index] => ref _sent[index];

    /// <summary>The oldest segment.</summary>
    public ref SentSegment First => ref _sent.First;

    /// <summary>Bytes in flight: neither SACKed nor lost-and-not-retransmitted (RFC 6675 "pipe", before any NewReno allowance).</summary>
    public long InFlight { get; private set; }

    /// <summary>Bytes the peer SACKed and has not acknowledged cumulatively.</summary>
    public long SackedBytes { get; private set; }

    /// <summary>Segments marked lost and not retransmitted since.</summary>
    public int LostPending { get; private set; }

    /// <summary>Segments retransmitted at least once.</summary>
    public int EverRetransmitted { get; private set; }

    /// <summary>The end of the highest segment ever retransmitted (RACK skips first transmissions beyond it).</summary>
    public long HighestRetransmittedEnd { get; private set; }

    /// <summary>Whether the oldest segment is SACKed (with the cumulative ACK at it: the peer reneged).</summary>
    public bool FirstIsSacked => _sent.Count > 0 && _sent.First.Has(SentSegmentFlags.Sacked);

    /// <summary>Position from which <see cref="FindFirstLostPending"/> searches.</summary>
    internal long LostHint { get; private set; }

    /// <summary>Whether a segment with <paramref name="flags"/> is lost and waits for its retransmission.</summary>
    public static bool IsLostPending(SentSegmentFlags flags) =>
        (flags & (SentSegmentFlags.Sacked | SentSegmentFlags.Lost | SentSegmentFlags.Retransmitted)) == SentSegmentFlags.Lost;

    /// <summary>Index of the segment containing <paramref name="position"/>, or -1.</summary>
    public int IndexOf(long position) => _sent.IndexOf(position);

    /// <summary>Appends a first transmission (in flight).</summary>
    public void Add(in SentSegment segment)
    {
        _sent.Add(segment);
        InFlight += Contribution(segment.Flags, segment.Length);
    }

    /// <summary>Changes a held segment's flags, keeping the totals in step.</summary>
    public void SetFlags(ref SentSegment s, SentSegmentFlags flags)
    {
        var old = s.Flags;
        if (old == flags)
        {
            return;
        }

        InFlight += Contribution(flags, s.Length) - Contribution(old, s.Length);
        if (((old ^ flags) & SentSegmentFlags.Sacked) != 0)
        {
            SackedBytes += (flags & SentSegmentFlags.Sacked) != 0 ? s.Length : -s.Length;
        }

        var wasLost = IsLostPending(old);
        var isLost = IsLostPending(flags);
        if (wasLost != isLost)
        {
            LostPending += isLost ? 1 : -1;
            if (isLost && s.Start < LostHint)
            {
                LostHint = s.Start;
            }
        }

        if (((old ^ flags) & SentSegmentFlags.EverRetransmitted) != 0)
        {
            EverRetransmitted += (flags & SentSegmentFlags.EverRetransmitted) != 0 ? 1 : -1;
        }

        s.Flags = flags;
    }

    /// <summary>Removes the oldest segment (cumulatively acknowledged).</summary>
    public void RemoveFirst()
    {
        ref var s = ref _sent.First;
        InFlight -= Contribution(s.Flags, s.Length);
        if (s.Has(SentSegmentFlags.Sacked))
        {
            SackedBytes -= s.Length;
        }

        if (IsLostPending(s.Flags))
        {
            LostPending--;
        }

        if (s.Has(SentSegmentFlags.EverRetransmitted))
        {
            EverRetransmitted--;
        }

        _sent.RemoveFirst();
    }

    /// <summary>
    /// The cumulative ACK reached <paramref name="ackPos"/> inside the oldest segment (the peer trimmed it): shrinks it;
    /// returns the bytes newly delivered (0 when they were SACKed already).
    /// </summary>
    public long TrimFirst(long ackPos)
    {
        ref var s = ref _sent.First;
        var trimmed = (int)(ackPos - s.Start);
        var oldContribution = Contribution(s.Flags, s.Length);
        long delivered = 0;
        if (s.Has(SentSegmentFlags.Sacked))
        {
            SackedBytes -= trimmed;
        }
        else
        {
            delivered = trimmed;
        }

        s.Start = ackPos;
        s.Length -= trimmed;
        InFlight += Contribution(s.Flags, s.Length) - oldContribution;
        return delivered;
    }

    /// <summary>The cumulative ACK moved to <paramref name="una"/>: the lost-segment search starts no earlier.</summary>
    public void OnCumulativeAck(long una)
    {
        if (LostHint < una)
        {
            LostHint = una;
        }
    }

    /// <summary>Forgets everything (the connection ended).</summary>
    public void Clear()
    {
        _sent.Clear();
        InFlight = 0;
        SackedBytes = 0;
        LostPending = 0;
        EverRetransmitted = 0;
    }

    /// <summary>Reneging (RFC 2018 §8): forgets every SACK mark so the data is resent.</summary>
    public void ClearSackMarks()
    {
        for (var i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            SetFlags(ref s, s.Flags & ~SentSegmentFlags.Sacked);
        }

        _cacheCount = 0;
    }

    /// <summary>Marks every segment not SACKed as lost and due for retransmission (a timeout, or a path that went down).</summary>
    public void MarkUnsackedLost()
    {
        for (var i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (!s.Has(SentSegmentFlags.Sacked))
            {
                SetFlags(ref s, (s.Flags | SentSegmentFlags.Lost) & ~SentSegmentFlags.Retransmitted);
            }
        }
    }

    /// <summary>Takes back every pending loss mark (a reduction found spurious).</summary>
    public void ClearPendingLosses()
    {
        for (var i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (IsLostPending(s.Flags))
            {
                SetFlags(ref s, s.Flags & ~SentSegmentFlags.Lost);
            }
        }
    }

    /// <summary>Position of the first segment lost and not yet retransmitted, or <paramref name="none"/>.</summary>
    public long FirstLostPosition(long none)
    {
        for (var i = 0; i < _sent.Count; i++)
        {
            if (IsLostPending(_sent[i].Flags))
            {
                return _sent[i].Start;
            }
        }

        return none;
    }

    /// <summary>Index of the first segment lost and not yet retransmitted (searching from the hint), or -1.</summary>
    public int FindFirstLostPending(long una)
    {
        var start = _sent.IndexOf(Math.Max(LostHint, una));
        if (start < 0)
        {
            start = 0;
        }

        for (var pass = 0; pass < 2; pass++)
        {
            for (var i = start; i < _sent.Count; i++)
            {
                if (IsLostPending(_sent[i].Flags))
                {
                    LostHint = _sent[i].Start;
                    return i;
                }
            }

            start = 0;
        }

        return -1;
    }

    /// <summary>
    /// Splits lost segment <paramref name="index"/> so that its first part has <paramref name="firstLength"/> octets
    /// (the path's segment size shrank); both halves stay lost and pending.
    /// </summary>
    public void SplitLost(int index, int firstLength)
    {
        _sent.Split(index, firstLength);
        LostPending++;
        if (_sent[index + 1].Has(SentSegmentFlags.EverRetransmitted))
        {
            EverRetransmitted++;
        }
    }

    /// <summary>Segment <paramref name="s"/> goes out again at <paramref name="now"/>; <paramref name="repair"/>: it was lost.</summary>
    public void OnRetransmit(ref SentSegment s, TimeSpan now, bool repair)
    {
        SetFlags(ref s, s.Flags | (repair ? SentSegmentFlags.Retransmitted | SentSegmentFlags.EverRetransmitted : SentSegmentFlags.EverRetransmitted));
        s.SentAt = now;
        if (repair)
        {
            LostHint = s.End;
        }

        if (s.End > HighestRetransmittedEnd)
        {
            HighestRetransmittedEnd = s.End;
        }
    }

    /// <summary>
    /// Applies one ACK's SACK blocks (positions sorted by left edge): marks each segment wholly inside a block SACKed and
    /// tells <paramref name="rack"/> it was delivered. Returns the bytes newly SACKed.
    /// </summary>
    public long ApplySackBlocks(ReadOnlySpan<long> lefts, ReadOnlySpan<long> rights, RackLossDetector rack, TimeSpan now)
    {
        long delivered = 0;
        for (var b = 0; b < lefts.Length; b++)
        {
            // A block seen before with the same left edge was already applied up to its old right edge (SACK
            // marks are only ever cleared on reneging, which empties this cache): scan only what is new.
            var from = lefts[b];
            for (var c = 0; c < _cacheCount; c++)
            {
                if (_cacheLeft[c] == lefts[b] && _cacheRight[c] > from)
                {
                    from = Math.Min(_cacheRight[c], rights[b]);
                }
            }

            if (from >= rights[b])
            {
                continue;
            }

            var i = _sent.IndexOf(from);
            if (i < 0)
            {
                continue;
            }

            for (; i < _sent.Count; i++)
            {
                ref var s = ref _sent[i];
                if (s.Start < lefts[b])
                {
                    continue; // Only partly inside the block.
                }

                if (s.End > rights[b])
                {
                    break;
                }

                if (!s.Has(SentSegmentFlags.Sacked))
                {
                    delivered += s.Length;
                    SetFlags(ref s, s.Flags | SentSegmentFlags.Sacked);
                    rack.OnDelivered(s, now);
                }
            }
        }

        _cacheCount = lefts.Length;
        lefts.CopyTo(_cacheLeft);
        rights.CopyTo(_cacheRight);
        return delivered;
    }

    /// <summary>
    /// For a SACKed segment <paramref name="i"/>: the index of the last segment of the run the last ACK's blocks
    /// describe (it may reach past the block), so a scan can skip the run in one step; <paramref name="i"/> otherwise.
    /// </summary>
    public int SkipSackedRun(int i)
    {
        ref var s = ref _sent[i];
        for (var c = 0; c < _cacheCount; c++)
        {
            if (_cacheLeft[c] <= s.Start && s.End < _cacheRight[c])
            {
                var j = _sent.IndexOf(_cacheRight[c] - 1);
                return j - 1 > i ? j - 1 : i;
            }
        }

        return i;
    }

    private static long Contribution(SentSegmentFlags flags, int length) =>
        (flags & SentSegmentFlags.Sacked) != 0 ? 0
        : (flags & (SentSegmentFlags.Lost | SentSegmentFlags.Retransmitted)) == SentSegmentFlags.Lost ? 0
        : length;
}
