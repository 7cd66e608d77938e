namespace Serval.Stack.Streams;

/// <summary>
/// RACK-TLP (RFC 8985): time-based loss detection from the most recently delivered segment, the reordering window and
/// its adaptation to D-SACKs (§6.2), the reordering timer, and the tail-loss probe's state (§7). It reads the RTT from
/// the connection's <see cref="RttEstimator"/> and marks segments lost in the <see cref="SackScoreboard"/>; what a loss
/// does to the congestion window is <see cref="LossRecovery"/>'s business.
/// </summary>
internal sealed class RackLossDetector(RttEstimator rtt)
{
    /// <summary>Duplicate-ACK threshold (RFC 6675 DupThresh), also RACK's "enough SACKed to skip the window".</summary>
    public const int DupThresh = 3;

    private bool _valid;
    private TimeSpan _xmit;
    private long _end;
    private TimeSpan _rackRtt;
    private long _fack;
    private bool _reorderingSeen;
    private int _reorderWindowMultiplier = 1;
    private int _reorderWindowPersist;
    private long _dsackRoundEnd = -1;
    private long _lastDsackStart = -1;
    private long _lastDsackEnd = -1;
    private bool _tlpPending;
    private long _tlpEnd;

    /// <summary>Whether a segment was delivered since the last reset (RACK has a reference point).</summary>
    public bool IsValid => _valid;

    /// <summary>When the reordering timer fires (RFC 8985 §6.2 step 5), or null.</summary>
    public TimeSpan? ReorderDeadline { get; private set; }

    /// <summary>Whether a tail-loss probe was sent and the ACK covering it has not arrived.</summary>
    public bool ProbeOutstanding { get; private set; }

    /// <summary>The current reordering-window multiplier (1–16, raised by D-SACKs).</summary>
    internal int ReorderWindowMultiplier => _reorderWindowMultiplier;

    /// <summary>Whether reordering was seen on this connection.</summary>
    internal bool ReorderingSeen => _reorderingSeen;

    /// <summary>RACK bookkeeping for a segment newly delivered, cumulatively or selectively (RFC 8985 §6.2 steps 2–3).</summary>
    public void OnDelivered(in SentSegment s, TimeSpan now)
    {
        var sample = now - s.SentAt;
        if (s.Has(SentSegmentFlags.EverRetransmitted) && rtt.HasSample && sample < rtt.MinRtt)
        {
            return; // Probably the original transmission's acknowledgement: ambiguous.
        }

        if (s.End > _fack)
        {
            _fack = s.End;
        }
        else if (s.End < _fack && !s.Has(SentSegmentFlags.EverRetransmitted))
        {
            _reorderingSeen = true;
        }

        if (!_valid || s.SentAt > _xmit || (s.SentAt == _xmit && s.End > _end))
        {
            _valid = true;
            _xmit = s.SentAt;
            _end = s.End;
            _rackRtt = sample;
        }
    }

    /// <summary>
    /// A D-SACK reported [<paramref name="start"/>, <paramref name="end"/>) received twice: reordering, so the window widens
    /// once per round trip (§6.2 step 4). Returns false for the same report repeated (a duplicated ACK).
    /// </summary>
    public bool OnDsack(long start, long end, long una, long nxt)
    {
        if (start == _lastDsackStart && end == _lastDsackEnd)
        {
            return false;
        }

        _lastDsackStart = start;
        _lastDsackEnd = end;
        _reorderingSeen = true;
        if (_dsackRoundEnd >= 0 && una >= _dsackRoundEnd)
        {
            _dsackRoundEnd = -1;
        }

        if (_dsackRoundEnd < 0)
        {
            _dsackRoundEnd = nxt;
            if (_reorderWindowMultiplier < 16)
            {
                _reorderWindowMultiplier++;
            }

            _reorderWindowPersist = 16;
        }

        return true;
    }

    /// <summary>A recovery episode ended: the widened window lasts 16 of them.</summary>
    public void OnRecoveryExit()
    {
        if (--_reorderWindowPersist <= 0)
        {
            _reorderWindowMultiplier = 1;
        }
    }

    /// <summary>The reordering window: zero in recovery or with DupThresh segments SACKed unless reordering was seen.</summary>
    public TimeSpan ReorderWindow(bool inRecovery, long sackedBytes, int mss)
    {
        if (!_reorderingSeen && (inRecovery || sackedBytes >= (long)DupThresh * mss))
        {
            return TimeSpan.Zero;
        }

        var w = _reorderWindowMultiplier * rtt.MinRtt / 4;
        return rtt.HasSample && w > rtt.SmoothedRtt ? rtt.SmoothedRtt : w;
    }

    /// <summary>
    /// RACK loss detection (§6.2 step 5): marks lost every segment sent before the most recently delivered one by more
    /// than its RTT plus the reordering window, and arms the reordering timer for the first one still within it.
    /// Returns whether a segment was newly marked lost.
    /// </summary>
    public bool DetectLoss(SackScoreboard scoreboard, TimeSpan now, bool inRecovery, int mss)
    {
        if (!_valid)
        {
            return false;
        }

        var reorderWindow = ReorderWindow(inRecovery, scoreboard.SackedBytes, mss);
        var earliest = TimeSpan.MaxValue;
        var marked = false;
        for (var i = 0; i < scoreboard.Count; i++)
        {
            ref var s = ref scoreboard[i];
            if (s.SentAt > _xmit || (s.SentAt == _xmit && s.End >= _end))
            {
                if (scoreboard.EverRetransmitted == 0 || (!s.Has(SentSegmentFlags.EverRetransmitted) && s.Start >= scoreboard.HighestRetransmittedEnd))
                {
                    break; // First transmissions go out in sequence order, and no retransmission lies beyond.
                }

                continue;
            }

            if (s.Has(SentSegmentFlags.Sacked))
            {
                i = scoreboard.SkipSackedRun(i); // The rest of a SACKed run the last ACK's blocks describe, in one step.
                continue;
            }

            if (SackScoreboard.IsLostPending(s.Flags))
            {
                continue;
            }

            var remaining = s.SentAt + _rackRtt + reorderWindow - now;
            if (remaining <= TimeSpan.Zero)
            {
                scoreboard.SetFlags(ref s, (s.Flags | SentSegmentFlags.Lost) & ~SentSegmentFlags.Retransmitted);
                marked = true;
            }
            else if (remaining < earliest)
            {
                earliest = remaining;
            }
        }

        ReorderDeadline = earliest == TimeSpan.MaxValue ? null : now + earliest;
        return marked;
    }

    /// <summary>Whether the reordering timer expired by <paramref name="now"/>; if so it is stopped.</summary>
    public bool ReorderTimerExpired(TimeSpan now)
    {
        if (ReorderDeadline is { } deadline && now >= deadline)
        {
            ReorderDeadline = null;
            return true;
        }

        return false;
    }

    /// <summary>Stops the reordering timer.</summary>
    public void StopReorderTimer() => ReorderDeadline = null;

    /// <summary>Forgets the reference point and stops the reordering timer (the path changed).</summary>
    public void Reset()
    {
        _valid = false;
        ReorderDeadline = null;
    }

    /// <summary>The probe timeout fired: the next poll sends a tail-loss probe.</summary>
    public void RequestProbe() => _tlpPending = true;

    /// <summary>Whether a probe was requested; the request is consumed.</summary>
    public bool TakeProbeRequest()
    {
        var pending = _tlpPending;
        _tlpPending = false;
        return pending;
    }

    /// <summary>A probe went out; it is answered once the cumulative ACK reaches <paramref name="nxt"/>.</summary>
    public void OnProbeSent(long nxt)
    {
        ProbeOutstanding = true;
        _tlpEnd = nxt;
    }

    /// <summary>The cumulative ACK reached <paramref name="una"/>.</summary>
    public void OnCumulativeAck(long una)
    {
        if (ProbeOutstanding && una >= _tlpEnd)
        {
            ProbeOutstanding = false;
        }
    }

    /// <summary>Recovery started: an outstanding probe no longer matters.</summary>
    public void OnRecovery() => ProbeOutstanding = false;

    /// <summary>A retransmission timeout: no probe outstanding or requested, no reordering timer.</summary>
    public void OnRetransmissionTimeout()
    {
        ProbeOutstanding = false;
        _tlpPending = false;
        ReorderDeadline = null;
    }

    /// <summary>The connection ended.</summary>
    public void Clear()
    {
        ReorderDeadline = null;
    }
}
