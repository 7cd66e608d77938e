using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>Segment arrival (RFC 9293 §3.10.7.4, with RFC 5961 checks and RFC 7323 PAWS) and data reassembly.</summary>
public sealed partial class StreamConnection
{
    private TcpRepr _peerSyn;
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
        var window = _receive.Window;
        bool acceptable;
        if (segLen == 0)
        {
            acceptable = window == 0 ? segPos == _receive.Next : segPos >= _receive.Next && segPos < _receive.Next + window;
        }
        else if (window == 0)
        {
            // Nothing fits, but ACKs, RSTs and a FIN at the expected position are still processed.
            acceptable = segPos == _receive.Next;
        }
        else
        {
            var last = segPos + segLen - 1;
            acceptable = (segPos >= _receive.Next && segPos < _receive.Next + window) || (last >= _receive.Next && last < _receive.Next + window);
        }

        if (!acceptable)
        {
            if (rst)
            {
                Defended(TransportDefence.SpoofTransportRst); // Outside the window: silently dropped (RFC 5961 §3.2).
            }
            else if (segPos < _receive.Next && segPos >= Math.Max(1, _receive.Next - _options.ReceiveBufferSize))
            {
                // A plausible old duplicate (a retransmission, a reordered ACK): acknowledged at once, with D-SACK.
                _ackNow = true;
                if (segLen > 0)
                {
                    _statDuplicateSegments++;
                }

                if (payload.Length > 0)
                {
                    _receive.ReportDuplicate(segPos, Math.Min(segPos + payload.Length, _receive.Next));
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
            if (_options.AcceptTransportResets && segPos == _receive.Next && _state != StreamState.TimeWait)
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

            _send.SetSequence(1, 1);
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
            if (mayReceive && _receive.TryAcceptFin(segPos + payload.Length))
            {
                OnPeerFin();
            }
            else
            {
                Defended(TransportDefence.SpoofFin);
            }
        }
    }

    private void ReceiveData(long segPos, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        var outcome = _receive.Store(segPos, payload, out var stored);
        if (outcome == ReceiveOutcome.Duplicate)
        {
            _statDuplicateSegments++;
            _ackNow = true;
            return;
        }

        if (payload.Length > _largestSegmentReceived)
        {
            _largestSegmentReceived = payload.Length;
        }

        if (outcome == ReceiveOutcome.InOrder)
        {
            ScheduleAck(stored, now);
        }
        else
        {
            if (outcome == ReceiveOutcome.OutOfOrder)
            {
                _statOutOfOrderSegments++;
            }

            _ackNow = true; // RFC 5681 §4.2: acknowledge out-of-order data at once, and while a gap is being repaired.
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

    /// <summary>The peer's FIN was consumed (RCV.NXT moved past it).</summary>
    private void OnPeerFin()
    {
        _ackNow = true;
        _state = _state switch
        {
            StreamState.Established => StreamState.CloseWait,
            StreamState.FinWait1 => StreamState.Closing,
            StreamState.FinWait2 => StreamState.TimeWait,
            _ => _state,
        };
    }

    private void MaybeScheduleWindowUpdate()
    {
        if (!IsSynchronized || _receive.FinReceived)
        {
            return;
        }

        if (_receive.WindowUpdateDue(_options.Mss))
        {
            _ackNow = true;
        }
    }
}
