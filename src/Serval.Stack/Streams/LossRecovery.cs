namespace Serval.Stack.Streams;

/// <summary>
/// Loss recovery: the recovery episode (fast recovery after a loss, or the episode a retransmission timeout starts),
/// proportional rate reduction during fast recovery (RFC 6937), NewReno's duplicate-ACK counting for peers without SACK
/// (RFC 6582, RFC 5681 §3.2), and undo of a reduction that D-SACKs show was spurious. It changes the congestion window
/// through the <see cref="CongestionController"/> and loss marks through the <see cref="SackScoreboard"/>; loss detection
/// itself is <see cref="RackLossDetector"/>'s.
/// </summary>
internal sealed class LossRecovery(CongestionController cc)
{
    private long _prrDelivered;
    private long _prrOut;
    private long _recoverFs;
    private int _dupAcks;
    private bool _undoValid;
    private long _undoMarker;
    private int _undoRetransmissions;
    private long _priorCwnd;
    private long _priorSsthresh;

    /// <summary>The current episode.</summary>
    public RecoveryMode Mode { get; private set; }

    /// <summary>Whether an episode is under way.</summary>
    public bool Active => Mode != RecoveryMode.None;

    /// <summary>The episode ends once the cumulative ACK reaches this position (SND.NXT when it began).</summary>
    public long RecoveryPoint { get; private set; }

    /// <summary>The episode does not reduce the window (its losses were of data sent before a migration).</summary>
    public bool NoCut { get; private set; }

    /// <summary>Segments the peer holds beyond a hole, as NewReno infers them from duplicate ACKs (no SACK).</summary>
    public int RenoSacked { get; private set; }

    /// <summary>Bytes in flight: the scoreboard's less what duplicate ACKs say has left the network (RFC 6675 "pipe").</summary>
    public long Pipe(SackScoreboard scoreboard, int mss) => Math.Max(0, scoreboard.InFlight - ((long)RenoSacked * mss));

    /// <summary>
    /// Starts fast recovery at <paramref name="nxt"/> (with the window reduction, unless <paramref name="noCut"/>);
    /// begins an undo episode and PRR.
    /// </summary>
    public void EnterFast(long una, long nxt, bool noCut, TimeSpan now)
    {
        Mode = RecoveryMode.Fast;
        RecoveryPoint = nxt;
        NoCut = noCut;
        if (noCut)
        {
            return;
        }

        var flight = nxt - una;
        BeginUndoEpisode(una);
        cc.OnCongestionEvent(now, flight);
        _prrDelivered = 0;
        _prrOut = 0;
        _recoverFs = Math.Max(1, flight);
    }

    /// <summary>A retransmission timeout (the congestion controller was told): the episode lasts until <paramref name="nxt"/>.</summary>
    public void EnterTimeout(long nxt)
    {
        Mode = RecoveryMode.Timeout;
        RecoveryPoint = nxt;
        NoCut = false;
        _dupAcks = 0;
        RenoSacked = 0;
    }

    /// <summary>Ends the episode; fast recovery leaves cwnd = ssthresh (RFC 6937).</summary>
    public void Exit(int mss)
    {
        if (Mode == RecoveryMode.Fast && !NoCut)
        {
            cc.Cwnd = Math.Max(cc.Ssthresh, 2L * mss);
        }

        Mode = RecoveryMode.None;
        NoCut = false;
        _dupAcks = 0;
        RenoSacked = 0;
    }

    /// <summary>PRR-SSRB (RFC 6937 §3.1) for one ACK during fast recovery: sets the window for what may be sent now.</summary>
    public void ProportionalRateReduction(long delivered, long pipe, int mss)
    {
        _prrDelivered += delivered;
        var ssthresh = cc.Ssthresh;
        long sendCount;
        if (pipe > ssthresh)
        {
            sendCount = ((_prrDelivered * ssthresh) + _recoverFs - 1) / _recoverFs - _prrOut;
        }
        else
        {
            var limit = Math.Max(_prrDelivered - _prrOut, delivered) + mss;
            sendCount = Math.Min(ssthresh - pipe, limit);
        }

        if (sendCount < 0)
        {
            sendCount = 0;
        }

        if (_prrOut == 0 && sendCount == 0)
        {
            sendCount = mss; // Always allow the fast retransmission itself.
        }

        cc.Cwnd = pipe + sendCount;
    }

    /// <summary><paramref name="bytes"/> of sequence space went out (new data or a retransmission).</summary>
    public void OnSent(int bytes)
    {
        if (Mode == RecoveryMode.Fast)
        {
            _prrOut += bytes;
        }
    }

    /// <summary>A lost segment was retransmitted.</summary>
    public void OnRetransmitted(int bytes)
    {
        OnSent(bytes);
        if (_undoValid)
        {
            _undoRetransmissions++;
        }
    }

    /// <summary>Remembers the window before a reduction, so that it can be restored if the reduction proves spurious.</summary>
    public void BeginUndoEpisode(long una)
    {
        _undoValid = true;
        _undoMarker = una;
        _undoRetransmissions = 0;
        _priorCwnd = cc.Cwnd;
        _priorSsthresh = cc.Ssthresh;
    }

    /// <summary>
    /// A new D-SACK for [<paramref name="start"/>, <paramref name="end"/>): when every retransmission of the episode
    /// proves duplicate, the reduction is undone (window restored, pending loss marks dropped, episode ended). Returns
    /// whether it was.
    /// </summary>
    public bool OnDsack(long start, long end, int mss, SackScoreboard scoreboard)
    {
        if (!_undoValid || _undoRetransmissions <= 0 || start < _undoMarker)
        {
            return false;
        }

        _undoRetransmissions -= (int)Math.Max(1, (end - start) / Math.Max(1, mss));
        if (_undoRetransmissions > 0)
        {
            return false;
        }

        _undoValid = false;
        cc.Undo(_priorCwnd, _priorSsthresh);
        scoreboard.ClearPendingLosses();
        if (Mode != RecoveryMode.None)
        {
            Mode = RecoveryMode.None;
            NoCut = false;
            _dupAcks = 0;
            RenoSacked = 0;
        }

        return true;
    }

    /// <summary>
    /// NewReno without SACK: counts duplicate ACKs; the third marks the oldest segment lost (returns true); a partial
    /// ACK in recovery marks the next hole lost (RFC 6582 §3.2). Adds to <paramref name="delivered"/> a segment per
    /// duplicate ACK (the peer holds one more beyond the hole).
    /// </summary>
    public bool OnAckWithoutSack(SackScoreboard scoreboard, long ackPos, long priorUna, bool isDuplicate, int recordsAcked, int mss, ref long delivered)
    {
        if (ackPos > priorUna)
        {
            _dupAcks = 0;
            RenoSacked = Math.Max(0, RenoSacked - Math.Max(0, recordsAcked - 1));
            if (Mode == RecoveryMode.Fast && ackPos < RecoveryPoint && scoreboard.Count > 0)
            {
                // Partial acknowledgement (RFC 6582 §3.2 step 3): the next hole is lost too.
                ref var head = ref scoreboard.First;
                if (!head.Has(SentSegmentFlags.EverRetransmitted) && !head.Has(SentSegmentFlags.Lost))
                {
                    scoreboard.SetFlags(ref head, head.Flags | SentSegmentFlags.Lost);
                }
            }

            return false;
        }

        if (!isDuplicate || scoreboard.Count == 0)
        {
            return false;
        }

        _dupAcks++;
        if (RenoSacked < scoreboard.Count - 1)
        {
            RenoSacked++;
            delivered += mss;
        }

        if (_dupAcks == RackLossDetector.DupThresh && Mode == RecoveryMode.None)
        {
            ref var head = ref scoreboard.First;
            if (!SackScoreboard.IsLostPending(head.Flags))
            {
                scoreboard.SetFlags(ref head, (head.Flags | SentSegmentFlags.Lost) & ~SentSegmentFlags.Retransmitted);
            }

            return true;
        }

        return false;
    }
}

/// <summary>A loss-recovery episode.</summary>
internal enum RecoveryMode
{
    /// <summary>No episode.</summary>
    None,

    /// <summary>Fast recovery (a loss detected by SACK, RACK or duplicate ACKs).</summary>
    Fast,

    /// <summary>After a retransmission timeout.</summary>
    Timeout,
}
