using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>Segment arrival (RFC 9293 §3.10.7.4, with RFC 5961 checks and RFC 7323 PAWS) and data reassembly.</summary>
public sealed partial class StreamConnection
{
    private TcpRepr _peerSyn;
    private bool _dsackPending;
    private long _dsackStart;
    private long _dsackEnd;
    private int _peerMss;
    private TimeSpan _lastReceived;

    /// <summary>
    /// Processes one segment of an opened connection (SYN-RECEIVED or later): acceptability and PAWS checks, RST
    /// (never honoured unless <see cref="StreamOptions.AcceptTransportResets"/>; then it closes with
    /// <see cref="StreamError.Reset"/> only when it carries exactly the next expected sequence number), SYN,
    /// acknowledgement acceptability (RFC 5961 §5.2) and window processing, SACK-based loss detection, data, and a
    /// FIN only when it is exactly in order. Suspicious segments are answered with rate-limited challenge ACKs and
    /// counted (<see cref="StreamStatistics"/>). Segments for a connection in SYN-SENT or CLOSED are ignored (use
    /// <see cref="OnSynAck"/>). Call <see cref="TryPoll"/> afterwards.
    /// </summary>
    public void OnSegment(in TcpRepr segment, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        if (_state is StreamState.Closed or StreamState.SynSent)
        {
            return;
        }

        _statSegmentsReceived++;
        if (segment.Has(TcpFlags.Syn))
        {
            // A repeated SYN (the SAL answers those) or a SYN in a synchronized state: challenge ACK whatever its
            // sequence number, and no state change (RFC 5961 §4).
            if (IsSynchronized)
            {
                Defended(TransportDefence.SpoofSyn);
                ChallengeAck(now);
            }

            return;
        }

        var rst = segment.Has(TcpFlags.Rst);
        var fin = segment.Has(TcpFlags.Fin);
        var segPos = RcvPosition(segment.SequenceNumber);
        var segLen = payload.Length + (fin ? 1 : 0);

        // PAWS (RFC 7323 §5.3): a timestamp older than TS.Recent marks an old duplicate. Like Linux, pure ACKs are
        // exempt: a reordered ACK is harmless and its SACK information (D-SACK above all) is still useful.
        if (_tsEnabled && !rst && segLen > 0 && segment.Timestamp is { } pawsTs && unchecked((int)(pawsTs.Value - _tsRecent)) < 0)
        {
            _ackNow = true;
            _statDuplicateSegments++;
            return;
        }

        // Acceptability (RFC 9293 §3.10.7.4, first check).
        var window = Math.Max(0, ReceiveLimit - _rcvNxt);
        bool acceptable;
        if (segLen == 0)
        {
            acceptable = window == 0 ? segPos == _rcvNxt : segPos >= _rcvNxt && segPos < _rcvNxt + window;
        }
        else if (window == 0)
        {
            // Nothing fits, but ACKs, RSTs and a FIN at the expected position are still processed.
            acceptable = segPos == _rcvNxt;
        }
        else
        {
            var last = segPos + segLen - 1;
            acceptable = (segPos >= _rcvNxt && segPos < _rcvNxt + window) || (last >= _rcvNxt && last < _rcvNxt + window);
        }

        if (!acceptable)
        {
            if (rst)
            {
                Defended(TransportDefence.SpoofTransportRst); // Outside the window: silently dropped (RFC 5961 §3.2).
            }
            else if (segPos < _rcvNxt && segPos >= Math.Max(1, _rcvNxt - _options.ReceiveBufferSize))
            {
                // A plausible old duplicate (a retransmission, a reordered ACK): acknowledged at once, with D-SACK.
                _ackNow = true;
                if (segLen > 0)
                {
                    _statDuplicateSegments++;
                }

                if (payload.Length > 0)
                {
                    ReportDuplicate(segPos, Math.Min(segPos + payload.Length, _rcvNxt));
                }
            }
            else
            {
                // Beyond the window, or further back than any window we advertised: a blind guess. RFC 9293 still
                // asks for an ACK; it is rate-limited so forged segments cannot make us flood the peer with
                // duplicate ACKs.
                Defended(TransportDefence.DataOutOfWindow);
                ChallengeAck(now);
            }

            return;
        }

        if (rst)
        {
            // On a Serval flow a genuine reset is a SAL RST carrying a nonce (the engine checks it); a bare TCP
            // RST could come from anyone who saw the flowIDs. It never changes state; in the window it gets a
            // challenge ACK (RFC 5961 §3.2), so a peer that really lost the connection answers with a SAL RST.
            if (_options.AcceptTransportResets && segPos == _rcvNxt && _state != StreamState.TimeWait)
            {
                Terminate(StreamError.Reset);
                return;
            }

            Defended(TransportDefence.SpoofTransportRst);
            if (_state != StreamState.TimeWait)
            {
                ChallengeAck(now); // RFC 1337: nothing cuts TIME-WAIT short; no answer there either.
            }

            return;
        }

        if (!segment.Has(TcpFlags.Ack))
        {
            Defended(TransportDefence.AckUnacceptable); // RFC 9293: a synchronized peer always sets ACK.
            return;
        }

        if (_state == StreamState.SynReceived)
        {
            if (SndPosition(segment.AckNumber) != 1)
            {
                Defended(TransportDefence.AckUnacceptable);
                return; // Does not acknowledge our SYN-ACK; the SAL decides whether to reset.
            }

            _sndUna = 1;
            _sndNxt = 1;
            _sndWnd = (long)segment.Window << _sndShift;
            _maxSndWnd = _sndWnd;
            _sndWl1 = segPos;
            _sndWl2 = 1;
            if (_handshakeTransmissions == 1)
            {
                _rtt.OnSample(now - _handshakeFirstSent);
            }

            Establish();
        }
        else if (!ProcessAck(segment, segPos, payload.Length, now))
        {
            return;
        }

        // Only a segment that passed the sequence and acknowledgement checks shows the peer is alive.
        _lastReceived = now;
        _keepAliveSent = 0;
        if (!IsSynchronized)
        {
            return; // Our FIN was acknowledged in LAST-ACK.
        }

        // TS.Recent (RFC 7323 §4.3).
        if (_tsEnabled && segment.Timestamp is { } ts && segPos <= _lastAckSent && unchecked((int)(ts.Value - _tsRecent)) >= 0)
        {
            _tsRecent = ts.Value;
        }

        var mayReceive = _state is StreamState.Established or StreamState.FinWait1 or StreamState.FinWait2;
        if (payload.Length > 0)
        {
            if (mayReceive)
            {
                ReceiveData(segPos, payload, now);
            }
            else
            {
                _ackNow = true;
            }
        }

        if (fin)
        {
            // The FIN counts only exactly in order: every byte before it has arrived and nothing beyond it has
            // (RCV.NXT is just past this segment's data). An out-of-order FIN bit is ignored — the data is kept and
            // the peer retransmits its FIN — so a forged FIN in the window cannot truncate the stream.
            if (mayReceive && _peerFinPosition < 0 && segPos + payload.Length == _rcvNxt)
            {
                _peerFinPosition = _rcvNxt;
                TryConsumeFin();
            }
            else
            {
                Defended(TransportDefence.SpoofFin);
            }
        }
    }

    private void ReceiveData(long segPos, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        var start = segPos;
        var end = segPos + payload.Length;
        if (_peerFinPosition >= 0 && end > _peerFinPosition)
        {
            end = _peerFinPosition;
        }

        if (start < _rcvNxt)
        {
            ReportDuplicate(start, Math.Min(end, _rcvNxt));
            start = _rcvNxt;
        }

        var limit = ReceiveLimit;
        if (end > limit)
        {
            end = limit;
        }

        if (start >= end)
        {
            _statDuplicateSegments++;
            _ackNow = true;
            return;
        }

        if (payload.Length > _largestSegmentReceived)
        {
            _largestSegmentReceived = payload.Length;
        }

        _receiveRing.Write(start - 1, payload.Slice((int)(start - segPos), (int)(end - start)));
        if (start == _rcvNxt)
        {
            _rcvNxt = end;
            var filled = false;
            while (_outOfOrder.Count > 0 && _outOfOrder[0].Start <= _rcvNxt)
            {
                _rcvNxt = Math.Max(_rcvNxt, _outOfOrder[0].End);
                _outOfOrder.RemoveFirst();
                filled = true;
            }

            if (filled || _outOfOrder.Count > 0)
            {
                _ackNow = true; // RFC 5681 §4.2: acknowledge at once while a gap is being repaired.
            }
            else
            {
                ScheduleAck(end - start, now);
            }
        }
        else
        {
            _statOutOfOrderSegments++;
            var holder = _outOfOrder.IndexOf(start);
            if (holder >= 0 && _outOfOrder[holder].End >= end)
            {
                ReportDuplicate(start, end);
            }
            else if (_outOfOrder.Add(start, end))
            {
                RememberSackBlock(start);
            }

            _ackNow = true; // RFC 5681 §4.2: out-of-order data is acknowledged immediately.
        }
    }

    private void ScheduleAck(long bytes, TimeSpan now)
    {
        _pendingAckBytes += bytes;
        if (_options.DelayedAck == TimeSpan.Zero || _pendingAckBytes >= 2L * _largestSegmentReceived)
        {
            _ackNow = true;
        }
        else
        {
            _delayedAckDeadline ??= now + _options.DelayedAck;
        }
    }

    private void TryConsumeFin()
    {
        if (_peerFinReceived || _peerFinPosition < 0 || _rcvNxt != _peerFinPosition)
        {
            return;
        }

        _rcvNxt++;
        _peerFinReceived = true;
        _ackNow = true;
        _state = _state switch
        {
            StreamState.Established => StreamState.CloseWait,
            StreamState.FinWait1 => StreamState.Closing,
            StreamState.FinWait2 => StreamState.TimeWait,
            _ => _state,
        };
    }

    private void RememberSackBlock(long start)
    {
        // Most recent first (RFC 2018 §4); drop positions whose block merged with this one.
        var index = _outOfOrder.IndexOf(start);
        var n = 0;
        for (var i = 0; i < _sackRecentCount; i++)
        {
            var p = _sackRecent[i];
            if (p >= _rcvNxt && _outOfOrder.IndexOf(p) is var j && j >= 0 && j != index)
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

    /// <summary>Reports duplicate data in the next ACK's first SACK block (D-SACK, RFC 2883).</summary>
    private void ReportDuplicate(long start, long end)
    {
        if (_sackEnabled && end > start)
        {
            _dsackPending = true;
            _dsackStart = start;
            _dsackEnd = end;
        }
    }

    private TcpSackBlocks BuildSackBlocks(int maxBlocks)
    {
        var blocks = TcpSackBlocks.Empty;
        if (!_sackEnabled)
        {
            return blocks;
        }

        if (_dsackPending)
        {
            _dsackPending = false;
            blocks = blocks.Add(new TcpSackBlock(RcvWire(_dsackStart), RcvWire(_dsackEnd)));
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
            blocks = blocks.Add(new TcpSackBlock(RcvWire(r.Start), RcvWire(r.End)));
        }

        for (var index = 0; index < _outOfOrder.Count && count < maxBlocks; index++)
        {
            if (used[..count].Contains(index))
            {
                continue;
            }

            used[count++] = index;
            var r = _outOfOrder[index];
            blocks = blocks.Add(new TcpSackBlock(RcvWire(r.Start), RcvWire(r.End)));
        }

        return blocks;
    }

    private void MaybeScheduleWindowUpdate()
    {
        if (!IsSynchronized || _peerFinReceived)
        {
            return;
        }

        var current = Math.Max(0, _lastAdvertisedRight - _rcvNxt);
        var possible = Math.Max(0, ReceiveLimit - _rcvNxt);
        var minIncrease = Math.Min(_options.ReceiveBufferSize / 2, _options.Mss);
        if (possible - current >= minIncrease && possible >= 2 * current)
        {
            _ackNow = true;
        }
    }
}
