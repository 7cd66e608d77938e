using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>
/// Acknowledgement processing: the ACK's acceptability (RFC 5961 §5.2), the peer's window, the cumulative ACK, RTT
/// sampling with Karn's rule or timestamps (RFC 6298, RFC 7323), SACK blocks and D-SACK (RFC 2018, RFC 2883), then loss
/// detection and recovery. The state lives in the parts: <see cref="SackScoreboard"/> (what is in flight, SACKed, lost),
/// <see cref="RackLossDetector"/> (RACK-TLP, RFC 8985), <see cref="LossRecovery"/> (fast recovery, PRR, NewReno, undo)
/// and the <see cref="CongestionController"/>; this file only sequences them for one ACK.
/// </summary>
public sealed partial class StreamConnection
{
    /// <summary>RFC 6675 "pipe": bytes believed to be in the network.</summary>
    private long Pipe => _recovery.Pipe(_scoreboard, DataMss);

    /// <summary>Processes the ACK field; false means "drop the rest of the segment".</summary>
    private bool ProcessAck(in TcpRepr segment, long segPos, int payloadLength, TimeSpan now)
    {
        var ackPos = SndPosition(segment.AckNumber);
        // RFC 5961 §5.2: acceptable only within [SND.UNA − MAX.SND.WND, SND.NXT]; anything else is dropped with its
        // data and FIN, and answered with a (rate-limited) ACK.
        if (ackPos > _send.Nxt || ackPos < _send.Una - Math.Max(_maxSndWnd, 1))
        {
            Defended(TransportDefence.AckUnacceptable);
            ChallengeAck(now);
            return false;
        }

        if (ackPos < _send.Una)
        {
            // An old (reordered) ACK: ignore its acknowledgement, but its SACK information is still news.
            if (_sackEnabled && segment.SackBlocks.Count > 0)
            {
                ProcessSackBlocks(segment.SackBlocks, ackPos, now);
            }

            return true;
        }

        _persistProbes = 0;
        var windowChanged = UpdatePeerWindow((long)segment.Window << _sndShift, segPos, ackPos);
        var priorUna = _send.Una;
        long delivered = 0;
        var recordsAcked = 0;
        if (ackPos > _send.Una)
        {
            delivered = ProcessCumulativeAck(ackPos, _tsEnabled ? segment.Timestamp : null, now, out recordsAcked);
        }

        if (_sackEnabled && segment.SackBlocks.Count > 0)
        {
            delivered += ProcessSackBlocks(segment.SackBlocks, ackPos, now);
        }

        // Reneging (RFC 2018 §8): the peer SACKed data it has not acknowledged cumulatively even though the
        // cumulative ACK reached it. SACKed data was never freed; forget the SACK marks so it is resent.
        if (_scoreboard.FirstIsSacked)
        {
            _scoreboard.ClearSackMarks();
            var quick = _rtt.SmoothedRtt / 2;
            _rtxDeadline = now + (quick > TimeSpan.FromMilliseconds(10) ? quick : TimeSpan.FromMilliseconds(10));
            _rtxIsProbe = false;
        }

        var newlyLost = false;
        if (!_sackEnabled)
        {
            var isDuplicate = payloadLength == 0 && !segment.Has(TcpFlags.Fin) && !windowChanged;
            newlyLost = _recovery.OnAckWithoutSack(_scoreboard, ackPos, priorUna, isDuplicate, recordsAcked, DataMss, ref delivered);
        }

        if (_recovery.Active && _send.Una >= _recovery.RecoveryPoint)
        {
            ExitRecovery();
        }

        if (_rack.IsValid && (_scoreboard.SackedBytes > 0 || _scoreboard.EverRetransmitted > 0))
        {
            newlyLost |= _rack.DetectLoss(_scoreboard, now, _recovery.Active, DataMss);
        }

        if (newlyLost && !_recovery.Active)
        {
            EnterFastRecovery(now);
        }

        if (_recovery.Mode == RecoveryMode.Fast)
        {
            if (!_recovery.NoCut)
            {
                _recovery.ProportionalRateReduction(delivered, Pipe, DataMss);
            }
        }
        else if (ackPos > priorUna)
        {
            _cc.OnAck(ackPos - priorUna, ackPos, _send.Nxt, now, _rtt.HasSample ? _rtt.SmoothedRtt : TimeSpan.Zero, _cwndLimited);
        }

        _rack.OnCumulativeAck(_send.Una);
        if (ackPos > priorUna)
        {
            if (_scoreboard.Count == 0)
            {
                _rtxDeadline = null;
                _rack.StopReorderTimer();
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

    /// <summary>Window update (RFC 9293 §3.10.7.4: only from a segment newer than the last update); returns whether the window changed.</summary>
    private bool UpdatePeerWindow(long newWindow, long segPos, long ackPos)
    {
        if (_sndWl1 < segPos || (_sndWl1 == segPos && _sndWl2 <= ackPos))
        {
            var changed = newWindow != _sndWnd;
            _sndWnd = newWindow;
            _sndWl1 = segPos;
            _sndWl2 = ackPos;
            if (newWindow > _maxSndWnd)
            {
                _maxSndWnd = newWindow;
            }

            return changed;
        }

        return false;
    }

    /// <summary>
    /// The cumulative ACK moved to <paramref name="ackPos"/>: forgets the acknowledged segments (RACK sees each delivered
    /// one), releases their bytes, takes an RTT sample and notices our FIN acknowledged. Returns the bytes newly delivered.
    /// </summary>
    private long ProcessCumulativeAck(long ackPos, TcpTimestamp? echo, TimeSpan now, out int recordsAcked)
    {
        long delivered = 0;
        recordsAcked = 0;
        var haveSample = false;
        var sampleSentAt = TimeSpan.Zero;
        while (_scoreboard.Count > 0 && _scoreboard.First.End <= ackPos)
        {
            ref var s = ref _scoreboard.First;
            if (!s.Has(SentSegmentFlags.Sacked))
            {
                delivered += s.Length;
                _rack.OnDelivered(s, now);
            }

            if (!s.Has(SentSegmentFlags.EverRetransmitted))
            {
                haveSample = true;
                sampleSentAt = s.SentAt;
            }

            recordsAcked++;
            _scoreboard.RemoveFirst();
        }

        if (_scoreboard.Count > 0 && _scoreboard.First.Start < ackPos)
        {
            delivered += _scoreboard.TrimFirst(ackPos); // Part of a segment acknowledged (the peer trimmed it).
        }

        _send.Acknowledge(ackPos);
        _rtt.ResetBackoff();
        _consecutiveTimeouts = 0;
        _scoreboard.OnCumulativeAck(_send.Una);
        if (_migrationHigh >= 0 && _send.Una >= _migrationHigh && !_frozen)
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

        if (_send.FinSent && !_send.FinAcked && _send.AllAcknowledged)
        {
            OnFinAcknowledged();
        }

        return delivered;
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
        Span<long> lefts = stackalloc long[SackScoreboard.MaxBlocks];
        Span<long> rights = stackalloc long[SackScoreboard.MaxBlocks];
        var n = 0;
        for (var b = first; b < blocks.Count && b < SackScoreboard.MaxBlocks; b++)
        {
            _statSackBlocks++;
            var l = SndPosition(blocks[b].Left);
            var r = SndPosition(blocks[b].Right);
            if (r <= l || l < _send.Una || r > _send.Nxt)
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

        return _scoreboard.ApplySackBlocks(lefts[..n], rights[..n], _rack, now);
    }

    /// <summary>
    /// The peer received [<paramref name="start"/>, <paramref name="end"/>) twice: there is reordering (RACK widens its
    /// window), and if every retransmission of the last recovery episode turns out duplicate, the reduction was
    /// spurious and is undone.
    /// </summary>
    private void OnDsack(long start, long end)
    {
        if (!_rack.OnDsack(start, end, _send.Una, _send.Nxt))
        {
            return; // The same report again (a duplicated ACK).
        }

        _statDsacks++;
        if (_recovery.OnDsack(start, end, DataMss, _scoreboard))
        {
            _statUndos++;
        }
    }

    private void EnterFastRecovery(TimeSpan now)
    {
        _statFastRetransmits++;
        _rack.OnRecovery();
        var noCut = _migrationHigh >= 0 && _scoreboard.FirstLostPosition(_send.Nxt) < _migrationHigh;
        _recovery.EnterFast(_send.Una, _send.Nxt, noCut, now);
    }

    private void ExitRecovery()
    {
        _recovery.Exit(DataMss);
        _rack.OnRecoveryExit();
    }

    private void OnFinAcknowledged()
    {
        _send.OnFinAcknowledged();
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
