using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>
/// Acknowledgement processing and loss recovery: the SACK scoreboard (RFC 2018, RFC 6675 pipe), RACK-TLP loss
/// detection (RFC 8985), NewReno recovery for peers without SACK (RFC 6582), proportional rate reduction
/// (RFC 6937), RTT sampling with Karn's rule or timestamps (RFC 6298, RFC 7323).
/// </summary>
public sealed partial class StreamConnection
{
    internal const int MaxSackBlocksProcessed = TcpSackBlocks.MaxBlocks;

    // Scoreboard totals, kept in step with the segment flags by SetFlags/ForgetFirst.
    private long _pipe;
    private long _sackedBytes;
    private int _lostPending;
    private int _everRetransmitted;
    private long _lostHint;

    private RecoveryMode _recovery;
    private long _recoveryPoint;
    private bool _recoveryNoCut;
    private long _prrDelivered;
    private long _prrOut;
    private long _recoverFs;
    private int _dupAcks;
    private int _renoSacked;
    private bool _cwndLimited;

    // RACK (RFC 8985 §6).
    private bool _rackValid;
    private TimeSpan _rackXmit;
    private long _rackEnd;
    private TimeSpan _rackRtt;
    private long _rackFack;
    private bool _reorderingSeen;
    private readonly long[] _sackCacheLeft = new long[MaxSackBlocksProcessed];
    private readonly long[] _sackCacheRight = new long[MaxSackBlocksProcessed];
    private int _sackCacheCount;
    private long _highestRetransmittedEnd;
    private int _reorderWindowMultiplier = 1;
    private int _reorderWindowPersist;
    private long _dsackRoundEnd = -1;
    private long _lastDsackStart = -1;
    private long _lastDsackEnd = -1;

    // Undo of a spurious reduction (D-SACK for every retransmission of the episode).
    private bool _undoValid;
    private long _undoMarker;
    private int _undoRetransmissions;
    private long _priorCwnd;
    private long _priorSsthresh;

    private enum RecoveryMode
    {
        None,
        Fast,
        Timeout,
    }

    /// <summary>RFC 6675 "pipe": bytes believed to be in the network.</summary>
    private long Pipe => Math.Max(0, _pipe - ((long)_renoSacked * DataMss));

    private static long Contribution(SentSegmentFlags flags, int length) =>
        (flags & SentSegmentFlags.Sacked) != 0 ? 0
        : (flags & (SentSegmentFlags.Lost | SentSegmentFlags.Retransmitted)) == SentSegmentFlags.Lost ? 0
        : length;

    private static bool IsLostPending(SentSegmentFlags flags) =>
        (flags & (SentSegmentFlags.Sacked | SentSegmentFlags.Lost | SentSegmentFlags.Retransmitted)) == SentSegmentFlags.Lost;

    private void SetFlags(ref SentSegment s, SentSegmentFlags flags)
    {
        var old = s.Flags;
        if (old == flags)
        {
            return;
        }

        _pipe += Contribution(flags, s.Length) - Contribution(old, s.Length);
        if (((old ^ flags) & SentSegmentFlags.Sacked) != 0)
        {
            _sackedBytes += (flags & SentSegmentFlags.Sacked) != 0 ? s.Length : -s.Length;
        }

        var wasLost = IsLostPending(old);
        var isLost = IsLostPending(flags);
        if (wasLost != isLost)
        {
            _lostPending += isLost ? 1 : -1;
            if (isLost && s.Start < _lostHint)
            {
                _lostHint = s.Start;
            }
        }

        if (((old ^ flags) & SentSegmentFlags.EverRetransmitted) != 0)
        {
            _everRetransmitted += (flags & SentSegmentFlags.EverRetransmitted) != 0 ? 1 : -1;
        }

        s.Flags = flags;
    }

    private void ForgetFirst()
    {
        ref var s = ref _sent.First;
        _pipe -= Contribution(s.Flags, s.Length);
        if (s.Has(SentSegmentFlags.Sacked))
        {
            _sackedBytes -= s.Length;
        }

        if (IsLostPending(s.Flags))
        {
            _lostPending--;
        }

        if (s.Has(SentSegmentFlags.EverRetransmitted))
        {
            _everRetransmitted--;
        }

        _sent.RemoveFirst();
    }

    /// <summary>Processes the ACK field; false means "drop the rest of the segment".</summary>
    private bool ProcessAck(in TcpRepr segment, long segPos, int payloadLength, TimeSpan now)
    {
        var ackPos = SndPosition(segment.AckNumber);
        // RFC 5961 §5.2: acceptable only within [SND.UNA − MAX.SND.WND, SND.NXT]; anything else is dropped with its
        // data and FIN, and answered with a (rate-limited) ACK.
        if (ackPos > _sndNxt || ackPos < _sndUna - Math.Max(_maxSndWnd, 1))
        {
            Defended(TransportDefence.AckUnacceptable);
            ChallengeAck(now);
            return false;
        }

        if (ackPos < _sndUna)
        {
            // An old (reordered) ACK: ignore its acknowledgement, but its SACK information is still news.
            if (_sackEnabled && segment.SackBlocks.Count > 0)
            {
                ProcessSackBlocks(segment.SackBlocks, ackPos, now);
            }

            return true;
        }

        _persistProbes = 0;
        var newWindow = (long)segment.Window << _sndShift;
        var windowChanged = false;
        if (_sndWl1 < segPos || (_sndWl1 == segPos && _sndWl2 <= ackPos))
        {
            windowChanged = newWindow != _sndWnd;
            _sndWnd = newWindow;
            _sndWl1 = segPos;
            _sndWl2 = ackPos;
            if (newWindow > _maxSndWnd)
            {
                _maxSndWnd = newWindow;
            }
        }

        var priorUna = _sndUna;
        long delivered = 0;
        var recordsAcked = 0;
        var haveSample = false;
        var sampleSentAt = TimeSpan.Zero;
        var echo = _tsEnabled ? segment.Timestamp : null;

        if (ackPos > _sndUna)
        {
            while (_sent.Count > 0 && _sent.First.End <= ackPos)
            {
                ref var s = ref _sent.First;
                if (!s.Has(SentSegmentFlags.Sacked))
                {
                    delivered += s.Length;
                    OnDelivered(ref s, now);
                }

                if (!s.Has(SentSegmentFlags.EverRetransmitted))
                {
                    haveSample = true;
                    sampleSentAt = s.SentAt;
                }

                recordsAcked++;
                ForgetFirst();
            }

            if (_sent.Count > 0 && _sent.First.Start < ackPos)
            {
                // Part of a segment acknowledged (the peer trimmed it): shrink it.
                ref var s = ref _sent.First;
                var trimmed = (int)(ackPos - s.Start);
                var oldContribution = Contribution(s.Flags, s.Length);
                if (s.Has(SentSegmentFlags.Sacked))
                {
                    _sackedBytes -= trimmed;
                }
                else
                {
                    delivered += trimmed;
                }

                s.Start = ackPos;
                s.Length -= trimmed;
                _pipe += Contribution(s.Flags, s.Length) - oldContribution;
            }

            _sndUna = ackPos;
            _sendRing.Release(AckedDataOffset);
            _rtt.ResetBackoff();
            _consecutiveTimeouts = 0;
            if (_lostHint < _sndUna)
            {
                _lostHint = _sndUna;
            }

            if (_migrationHigh >= 0 && _sndUna >= _migrationHigh && !_frozen)
            {
                _migrationHigh = -1;
            }

            if (haveSample)
            {
                OnRttSample(now - sampleSentAt);
            }
            else if (echo is { } e && e.EchoReply != 0)
            {
                var ms = unchecked((int)(TsNow(now) - e.EchoReply));
                if (ms >= 0 && ms < 3_600_000)
                {
                    OnRttSample(TimeSpan.FromMilliseconds(ms));
                }
            }

            if (_finSent && !_finAcked && _sndUna == _sndNxt)
            {
                OnFinAcknowledged();
            }
        }

        if (_sackEnabled && segment.SackBlocks.Count > 0)
        {
            delivered += ProcessSackBlocks(segment.SackBlocks, ackPos, now);
        }

        // Reneging (RFC 2018 §8): the peer SACKed data it has not acknowledged cumulatively even though the
        // cumulative ACK reached it. SACKed data was never freed; forget the SACK marks so it is resent.
        if (_sent.Count > 0 && _sent.First.Has(SentSegmentFlags.Sacked))
        {
            for (var i = 0; i < _sent.Count; i++)
            {
                ref var s = ref _sent[i];
                SetFlags(ref s, s.Flags & ~SentSegmentFlags.Sacked);
            }

            _sackCacheCount = 0;

            var quick = _rtt.SmoothedRtt / 2;
            _rtxDeadline = now + (quick > TimeSpan.FromMilliseconds(10) ? quick : TimeSpan.FromMilliseconds(10));
            _rtxIsProbe = false;
        }

        var newlyLost = false;
        if (!_sackEnabled)
        {
            newlyLost = ProcessDuplicateAcks(ackPos, priorUna, payloadLength, segment.Has(TcpFlags.Fin), windowChanged, recordsAcked, ref delivered);
        }

        if (_recovery != RecoveryMode.None && _sndUna >= _recoveryPoint)
        {
            ExitRecovery();
        }

        if (_rackValid && (_sackedBytes > 0 || _everRetransmitted > 0))
        {
            newlyLost |= DetectLossRack(now);
        }

        if (newlyLost && _recovery == RecoveryMode.None)
        {
            EnterFastRecovery(now);
        }

        if (_recovery == RecoveryMode.Fast)
        {
            if (!_recoveryNoCut)
            {
                ProportionalRateReduction(delivered);
            }
        }
        else if (ackPos > priorUna)
        {
            _cc.OnAck(ackPos - priorUna, ackPos, _sndNxt, now, _rtt.HasSample ? _rtt.SmoothedRtt : TimeSpan.Zero, _cwndLimited);
        }

        if (_tlpOutstanding && _sndUna >= _tlpEnd)
        {
            _tlpOutstanding = false;
        }

        if (ackPos > priorUna)
        {
            if (_sent.Count == 0)
            {
                _rtxDeadline = null;
                _reorderDeadline = null;
            }
            else
            {
                ArmRetransmissionDeadline(now, allowProbe: true); // RFC 6298 (5.3).
            }
        }

        if (_sndWnd > 0)
        {
            _persistDeadline = null;
            _persistBackoff = 0;
            _probePending = false;
        }

        return true;
    }

    private bool ProcessDuplicateAcks(long ackPos, long priorUna, int payloadLength, bool fin, bool windowChanged, int recordsAcked, ref long delivered)
    {
        if (ackPos > priorUna)
        {
            _dupAcks = 0;
            _renoSacked = Math.Max(0, _renoSacked - Math.Max(0, recordsAcked - 1));
            if (_recovery == RecoveryMode.Fast && ackPos < _recoveryPoint && _sent.Count > 0)
            {
                // Partial acknowledgement (RFC 6582 §3.2 step 3): the next hole is lost too.
                ref var head = ref _sent.First;
                if (!head.Has(SentSegmentFlags.EverRetransmitted) && !head.Has(SentSegmentFlags.Lost))
                {
                    SetFlags(ref head, head.Flags | SentSegmentFlags.Lost);
                }
            }

            return false;
        }

        var isDuplicate = payloadLength == 0 && !fin && !windowChanged && _sent.Count > 0;
        if (!isDuplicate)
        {
            return false;
        }

        _dupAcks++;
        if (_renoSacked < _sent.Count - 1)
        {
            _renoSacked++;
            delivered += DataMss;
        }

        if (_dupAcks == DupThresh && _recovery == RecoveryMode.None)
        {
            ref var head = ref _sent.First;
            if (!IsLostPending(head.Flags))
            {
                SetFlags(ref head, (head.Flags | SentSegmentFlags.Lost) & ~SentSegmentFlags.Retransmitted);
            }

            return true;
        }

        return false;
    }

    private void OnRttSample(TimeSpan rtt)
    {
        _rtt.OnSample(rtt);
        _cc.OnRttSample(rtt);
    }

    private long ProcessSackBlocks(in TcpSackBlocks blocks, long ackPos, TimeSpan now)
    {
        // D-SACK (RFC 2883 §4): a first block below the segment's cumulative ACK or inside the second block.
        var first = 0;
        var l0 = SndPosition(blocks[0].Left);
        var r0 = SndPosition(blocks[0].Right);
        if (r0 > l0 && r0 - l0 <= int.MaxValue && (r0 <= ackPos ||
            (blocks.Count > 1 && l0 >= SndPosition(blocks[1].Left) && r0 <= SndPosition(blocks[1].Right))))
        {
            _statSackBlocks++;
            OnDsack(l0, r0);
            first = 1;
        }

        // Sort the blocks by left edge so that RACK's reordering detection sees them in sequence order.
        Span<long> lefts = stackalloc long[MaxSackBlocksProcessed];
        Span<long> rights = stackalloc long[MaxSackBlocksProcessed];
        var n = 0;
        for (var b = first; b < blocks.Count && b < MaxSackBlocksProcessed; b++)
        {
            _statSackBlocks++;
            var l = SndPosition(blocks[b].Left);
            var r = SndPosition(blocks[b].Right);
            if (r <= l || l < _sndUna || r > _sndNxt)
            {
                continue; // Bogus or stale.
            }

            var k = n++;
            while (k > 0 && lefts[k - 1] > l)
            {
                lefts[k] = lefts[k - 1];
                rights[k] = rights[k - 1];
                k--;
            }

            lefts[k] = l;
            rights[k] = r;
        }

        long delivered = 0;
        for (var b = 0; b < n; b++)
        {
            // A block seen before with the same left edge was already applied up to its old right edge (SACK
            // marks are only ever cleared on reneging, which empties this cache): scan only what is new.
            var from = lefts[b];
            for (var c = 0; c < _sackCacheCount; c++)
            {
                if (_sackCacheLeft[c] == lefts[b] && _sackCacheRight[c] > from)
                {
                    from = Math.Min(_sackCacheRight[c], rights[b]);
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
                    OnDelivered(ref s, now);
                }
            }
        }

        _sackCacheCount = n;
        lefts[..n].CopyTo(_sackCacheLeft);
        rights[..n].CopyTo(_sackCacheRight);
        return delivered;
    }

    /// <summary>
    /// The peer received [<paramref name="start"/>, <paramref name="end"/>) twice: there is reordering (widen
    /// RACK's reordering window, RFC 8985 §6.2 step 4), and if every retransmission of the last recovery episode
    /// turns out duplicate, the reduction was spurious and is undone.
    /// </summary>
    private void OnDsack(long start, long end)
    {
        if (start == _lastDsackStart && end == _lastDsackEnd)
        {
            return; // The same report again (a duplicated ACK).
        }

        _lastDsackStart = start;
        _lastDsackEnd = end;
        _statDsacks++;
        _reorderingSeen = true;
        if (_dsackRoundEnd >= 0 && _sndUna >= _dsackRoundEnd)
        {
            _dsackRoundEnd = -1;
        }

        if (_dsackRoundEnd < 0)
        {
            _dsackRoundEnd = _sndNxt;
            if (_reorderWindowMultiplier < 16)
            {
                _reorderWindowMultiplier++;
            }

            _reorderWindowPersist = 16;
        }

        if (_undoValid && _undoRetransmissions > 0 && start >= _undoMarker)
        {
            _undoRetransmissions -= (int)Math.Max(1, (end - start) / Math.Max(1, DataMss));
            if (_undoRetransmissions <= 0)
            {
                UndoReduction();
            }
        }
    }

    private void BeginUndoEpisode()
    {
        _undoValid = true;
        _undoMarker = _sndUna;
        _undoRetransmissions = 0;
        _priorCwnd = _cc.Cwnd;
        _priorSsthresh = _cc.Ssthresh;
    }

    private void UndoReduction()
    {
        _undoValid = false;
        _statUndos++;
        _cc.Undo(_priorCwnd, _priorSsthresh);
        for (var i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (IsLostPending(s.Flags))
            {
                SetFlags(ref s, s.Flags & ~SentSegmentFlags.Lost);
            }
        }

        if (_recovery != RecoveryMode.None)
        {
            _recovery = RecoveryMode.None;
            _recoveryNoCut = false;
            _dupAcks = 0;
            _renoSacked = 0;
        }
    }

    /// <summary>RACK bookkeeping for a segment newly delivered, cumulatively or selectively (RFC 8985 §6.2 steps 2–3).</summary>
    private void OnDelivered(ref SentSegment s, TimeSpan now)
    {
        var rtt = now - s.SentAt;
        if (s.Has(SentSegmentFlags.EverRetransmitted) && _rtt.HasSample && rtt < _rtt.MinRtt)
        {
            return; // Probably the original transmission's acknowledgement: ambiguous.
        }

        if (s.End > _rackFack)
        {
            _rackFack = s.End;
        }
        else if (s.End < _rackFack && !s.Has(SentSegmentFlags.EverRetransmitted))
        {
            _reorderingSeen = true;
        }

        if (!_rackValid || s.SentAt > _rackXmit || (s.SentAt == _rackXmit && s.End > _rackEnd))
        {
            _rackValid = true;
            _rackXmit = s.SentAt;
            _rackEnd = s.End;
            _rackRtt = rtt;
        }
    }

    private TimeSpan ReorderWindow()
    {
        if (!_reorderingSeen && (_recovery != RecoveryMode.None || _sackedBytes >= (long)DupThresh * DataMss))
        {
            return TimeSpan.Zero;
        }

        var w = _reorderWindowMultiplier * _rtt.MinRtt / 4;
        return _rtt.HasSample && w > _rtt.SmoothedRtt ? _rtt.SmoothedRtt : w;
    }

    /// <summary>RACK loss detection (RFC 8985 §6.2 step 5); returns whether a segment was newly marked lost.</summary>
    private bool DetectLossRack(TimeSpan now)
    {
        if (!_rackValid)
        {
            return false;
        }

        var reorderWindow = ReorderWindow();
        var earliest = TimeSpan.MaxValue;
        var marked = false;
        for (var i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (s.SentAt > _rackXmit || (s.SentAt == _rackXmit && s.End >= _rackEnd))
            {
                if (_everRetransmitted == 0 || (!s.Has(SentSegmentFlags.EverRetransmitted) && s.Start >= _highestRetransmittedEnd))
                {
                    break; // First transmissions go out in sequence order, and no retransmission lies beyond.
                }

                continue;
            }

            if (s.Has(SentSegmentFlags.Sacked))
            {
                // Skip the rest of a SACKed run in one step when the last ACK's blocks describe it.
                for (var c = 0; c < _sackCacheCount; c++)
                {
                    if (_sackCacheLeft[c] <= s.Start && s.End < _sackCacheRight[c])
                    {
                        // Resume at the segment holding the block's last octet (it may reach past the block).
                        var j = _sent.IndexOf(_sackCacheRight[c] - 1);
                        if (j - 1 > i)
                        {
                            i = j - 1;
                        }

                        break;
                    }
                }

                continue;
            }

            if (IsLostPending(s.Flags))
            {
                continue;
            }

            var remaining = s.SentAt + _rackRtt + reorderWindow - now;
            if (remaining <= TimeSpan.Zero)
            {
                SetFlags(ref s, (s.Flags | SentSegmentFlags.Lost) & ~SentSegmentFlags.Retransmitted);
                marked = true;
            }
            else if (remaining < earliest)
            {
                earliest = remaining;
            }
        }

        _reorderDeadline = earliest == TimeSpan.MaxValue ? null : now + earliest;
        return marked;
    }

    private void EnterFastRecovery(TimeSpan now)
    {
        _recovery = RecoveryMode.Fast;
        _recoveryPoint = _sndNxt;
        _statFastRetransmits++;
        _tlpOutstanding = false;
        _recoveryNoCut = _migrationHigh >= 0 && FirstLostPosition() < _migrationHigh;
        if (_recoveryNoCut)
        {
            return;
        }

        var flight = _sndNxt - _sndUna;
        BeginUndoEpisode();
        _cc.OnCongestionEvent(now, flight);
        _prrDelivered = 0;
        _prrOut = 0;
        _recoverFs = Math.Max(1, flight);
    }

    private long FirstLostPosition()
    {
        for (var i = 0; i < _sent.Count; i++)
        {
            if (IsLostPending(_sent[i].Flags))
            {
                return _sent[i].Start;
            }
        }

        return _sndNxt;
    }

    private void ExitRecovery()
    {
        if (_recovery == RecoveryMode.Fast && !_recoveryNoCut)
        {
            _cc.Cwnd = Math.Max(_cc.Ssthresh, 2L * DataMss); // RFC 6937: cwnd = ssthresh at the end of recovery.
        }

        _recovery = RecoveryMode.None;
        _recoveryNoCut = false;
        _dupAcks = 0;
        _renoSacked = 0;
        if (--_reorderWindowPersist <= 0)
        {
            _reorderWindowMultiplier = 1;
        }
    }

    /// <summary>PRR-SSRB (RFC 6937 §3.1) for one ACK during fast recovery.</summary>
    private void ProportionalRateReduction(long delivered)
    {
        _prrDelivered += delivered;
        var pipe = Pipe;
        var ssthresh = _cc.Ssthresh;
        long sendCount;
        if (pipe > ssthresh)
        {
            sendCount = ((_prrDelivered * ssthresh) + _recoverFs - 1) / _recoverFs - _prrOut;
        }
        else
        {
            var limit = Math.Max(_prrDelivered - _prrOut, delivered) + DataMss;
            sendCount = Math.Min(ssthresh - pipe, limit);
        }

        if (sendCount < 0)
        {
            sendCount = 0;
        }

        if (_prrOut == 0 && sendCount == 0)
        {
            sendCount = DataMss; // Always allow the fast retransmission itself.
        }

        _cc.Cwnd = pipe + sendCount;
    }

    private void OnFinAcknowledged()
    {
        _finAcked = true;
        switch (_state)
        {
            case StreamState.FinWait1:
                _state = StreamState.FinWait2;
                break;
            case StreamState.Closing:
                _state = StreamState.TimeWait;
                break;
            case StreamState.LastAck:
                Terminate(StreamError.None);
                break;
        }
    }
}
