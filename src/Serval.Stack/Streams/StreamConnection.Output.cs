using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>Segment transmission: retransmissions, new data under the congestion and peer windows, probes, ACKs.</summary>
public sealed partial class StreamConnection
{
    private bool _tlpPending;
    private bool _tlpOutstanding;
    private long _tlpEnd;
    private bool _probePending;
    private bool _swsOverride;
    private bool _keepAlivePending;

    // Pacing: a token bucket refilled at the pacing rate.
    private double _pacingTokens = double.MaxValue;
    private TimeSpan _pacingRefilled;
    private TimeSpan? _pacingDeadline;

    private long _statBytesSent;
    private long _statBytesRetransmitted;
    private long _statSegmentsSent;
    private long _statSegmentsReceived;
    private long _statRetransmissions;
    private long _statFastRetransmits;
    private long _statTimeouts;
    private long _statTailLossProbes;
    private long _statWindowProbes;
    private long _statKeepAliveProbes;
    private long _statSackBlocks;
    private long _statDuplicateSegments;
    private long _statOutOfOrderSegments;
    private long _statDsacks;
    private long _statUndos;

    private int MaxSegmentsInFlight => Math.Max(1024, 4 * (_options.SendBufferSize / Math.Max(1, DataMss)));

    /// <summary>
    /// Produces the next segment to transmit, if any: an RST after <see cref="Abort"/>; otherwise (in a
    /// synchronized state) a retransmission, a tail-loss probe, new data or our FIN, a zero-window probe, a
    /// keepalive probe, or a pure ACK / window update — in that order. Expired timers are run first. The payload is
    /// copied into <paramref name="payloadBuffer"/> (which should hold <see cref="StreamOptions.Mss"/> bytes; less
    /// just makes segments smaller). Call repeatedly until it returns false.
    /// While <see cref="IsFrozen"/> only ACKs (and an RST) are produced.
    /// </summary>
    public bool TryPoll(TimeSpan now, Span<byte> payloadBuffer, out TcpRepr segment, out int payloadLength)
    {
        payloadLength = 0;
        if (_rstPending)
        {
            _rstPending = false;
            _statSegmentsSent++;
            segment = new TcpRepr
            {
                SequenceNumber = SndWire(_sndNxt),
                AckNumber = RcvWire(_rcvNxt),
                Flags = TcpFlags.Rst | TcpFlags.Ack,
            };
            return true;
        }

        segment = default;
        if (!IsSynchronized)
        {
            return false;
        }

        _pacingDeadline = null;
        OnTimeout(now);
        if (!IsSynchronized)
        {
            return false;
        }

        if (!_frozen)
        {
            if (TrySendRetransmission(now, payloadBuffer, out segment, out payloadLength))
            {
                return true;
            }

            if (_tlpPending)
            {
                _tlpPending = false;
                if (TrySendTailLossProbe(now, payloadBuffer, out segment, out payloadLength))
                {
                    return true;
                }
            }

            if (TrySendNewData(now, payloadBuffer, ignoreCongestionWindow: false, out segment, out payloadLength))
            {
                return true;
            }

            if (_probePending)
            {
                _probePending = false;
                if (_sent.Count == 0 && HasUnsentData && _sndWnd == 0)
                {
                    _persistProbes++;
                    if (_persistProbes > _options.MaxRetransmissions)
                    {
                        Terminate(StreamError.TimedOut);
                        return false;
                    }

                    _statWindowProbes++;
                    _persistBackoff++;
                    _persistDeadline = now + PersistInterval();

                    // Like Linux: an old sequence number and no data, which any receiver answers with an ACK.
                    segment = BuildHeader(_sndUna - 1, TcpFlags.None, now, withSack: false);
                    return true;
                }
            }
        }

        if (_keepAlivePending)
        {
            _keepAlivePending = false;
            _statKeepAliveProbes++;
            segment = BuildHeader(_sndNxt - 1, TcpFlags.None, now, withSack: false);
            return true;
        }

        if (_ackNow)
        {
            segment = BuildHeader(_sndNxt, TcpFlags.None, now, withSack: true);
            return true;
        }

        return false;
    }

    private bool TrySendRetransmission(TimeSpan now, Span<byte> buffer, out TcpRepr segment, out int payloadLength)
    {
        segment = default;
        payloadLength = 0;
        if (_lostPending == 0)
        {
            return false;
        }

        if (Pipe >= _cc.Cwnd)
        {
            _cwndLimited = true;
            return false;
        }

        if (!PacingAllows(now))
        {
            return false;
        }

        var index = FindFirstLostPending();
        if (index < 0)
        {
            return false;
        }

        var withSack = true;
        var maxPayload = Math.Min(_sndMss - OptionsLength(withSack), buffer.Length);
        if (_sent[index].DataLength > maxPayload)
        {
            withSack = false;
            maxPayload = Math.Min(_sndMss - OptionsLength(withSack), buffer.Length);
            if (_sent[index].DataLength > maxPayload)
            {
                _sent.Split(index, maxPayload);
                _lostPending++; // Both halves are lost and pending.
                if (_sent[index + 1].Has(SentSegmentFlags.EverRetransmitted))
                {
                    _everRetransmitted++;
                }
            }
        }

        ref var s = ref _sent[index];
        var dataLength = s.DataLength;
        _sendRing.Read(s.Start - 1, buffer[..dataLength]);
        var flags = s.Has(SentSegmentFlags.Fin) ? TcpFlags.Fin | TcpFlags.Psh : TcpFlags.None;
        SetFlags(ref s, s.Flags | SentSegmentFlags.Retransmitted | SentSegmentFlags.EverRetransmitted);
        s.SentAt = now;
        _lostHint = s.End;
        if (s.End > _highestRetransmittedEnd)
        {
            _highestRetransmittedEnd = s.End;
        }
        ConsumePacingTokens(s.Length);
        _statRetransmissions++;
        _statBytesRetransmitted += dataLength;
        _statBytesSent += dataLength;
        if (_recovery == RecoveryMode.Fast)
        {
            _prrOut += s.Length;
        }

        if (_undoValid)
        {
            _undoRetransmissions++;
        }

        segment = BuildHeader(s.Start, flags, now, withSack);
        payloadLength = dataLength;
        if (_rtxDeadline is null || _rtxIsProbe || index == 0)
        {
            // Like Linux, retransmitting the oldest segment restarts the timer: its repair needs a round trip.
            ArmRetransmissionDeadline(now, allowProbe: false);
        }

        return true;
    }

    private int FindFirstLostPending()
    {
        var start = _sent.IndexOf(Math.Max(_lostHint, _sndUna));
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
                    _lostHint = _sent[i].Start;
                    return i;
                }
            }

            start = 0;
        }

        return -1;
    }

    private bool TrySendTailLossProbe(TimeSpan now, Span<byte> buffer, out TcpRepr segment, out int payloadLength)
    {
        segment = default;
        payloadLength = 0;
        if (_sent.Count == 0)
        {
            return false;
        }

        // RFC 8985 §7.3: new data if the peer's window allows, else the last segment again.
        if (!TrySendNewData(now, buffer, ignoreCongestionWindow: true, out segment, out payloadLength))
        {
            var index = _sent.Count - 1;
            while (index >= 0 && _sent[index].Has(SentSegmentFlags.Sacked))
            {
                index--;
            }

            if (index < 0 || _sent[index].DataLength > Math.Min(_sndMss - OptionsLength(false), buffer.Length))
            {
                return false;
            }

            ref var s = ref _sent[index];
            var dataLength = s.DataLength;
            _sendRing.Read(s.Start - 1, buffer[..dataLength]);
            var flags = s.Has(SentSegmentFlags.Fin) ? TcpFlags.Fin | TcpFlags.Psh : TcpFlags.None;
            SetFlags(ref s, s.Flags | SentSegmentFlags.EverRetransmitted);
            s.SentAt = now;
            if (s.End > _highestRetransmittedEnd)
            {
                _highestRetransmittedEnd = s.End;
            }

            _statRetransmissions++;
            _statBytesRetransmitted += dataLength;
            _statBytesSent += dataLength;
            segment = BuildHeader(s.Start, flags, now, withSack: false);
            payloadLength = dataLength;
        }

        _statTailLossProbes++;
        _tlpOutstanding = true;
        _tlpEnd = _sndNxt;
        ArmRetransmissionDeadline(now, allowProbe: false);
        return true;
    }

    private bool TrySendNewData(TimeSpan now, Span<byte> buffer, bool ignoreCongestionWindow, out TcpRepr segment, out int payloadLength)
    {
        segment = default;
        payloadLength = 0;
        var finPending = _writesCompleted && !_finSent;
        var unsent = HasUnsentData ? 1 + _writeEnd - _sndNxt : 0;
        if (unsent == 0 && !finPending)
        {
            NotCongestionLimited(); // Application-limited.
            return false;
        }

        if (_sent.Count >= MaxSegmentsInFlight)
        {
            return false;
        }

        var maxPayload = Math.Min(_sndMss - OptionsLength(true), buffer.Length);
        long length = 0;
        if (unsent > 0)
        {
            if (!ignoreCongestionWindow && Pipe >= _cc.Cwnd)
            {
                _cwndLimited = true;
                return false;
            }

            if (!ignoreCongestionWindow && !PacingAllows(now))
            {
                return false;
            }

            var windowRoom = _sndUna + _sndWnd - _sndNxt;
            length = Math.Min(Math.Min(unsent, maxPayload), windowRoom);
            if (length <= 0)
            {
                NotCongestionLimited(); // Receiver-limited.
                ArmPersistIfIdle(now);
                return false;
            }

            if (length < maxPayload && length < unsent)
            {
                // Limited by the peer's window: sender-side silly window avoidance (RFC 9293 §3.8.6.2.1).
                if (length < _maxSndWnd / 2 && !_swsOverride)
                {
                    NotCongestionLimited();
                    ArmPersistIfIdle(now);
                    return false;
                }
            }
            else if (length < maxPayload && !_options.NoDelay && _sndNxt > _sndUna && !finPending)
            {
                return false; // Nagle (RFC 9293 §3.7.4): wait until the outstanding data is acknowledged.
            }

            _swsOverride = false;
        }

        var fin = finPending && length == unsent;
        var flags = (fin ? TcpFlags.Fin : TcpFlags.None) | (length > 0 && length == unsent ? TcpFlags.Psh : TcpFlags.None);
        _sendRing.Read(_sndNxt - 1, buffer[..(int)length]);
        var record = new SentSegment
        {
            Start = _sndNxt,
            Length = (int)length + (fin ? 1 : 0),
            SentAt = now,
            Flags = fin ? SentSegmentFlags.Fin : SentSegmentFlags.None,
        };
        segment = BuildHeader(_sndNxt, flags, now, withSack: true);
        payloadLength = (int)length;
        _sent.Add(record);
        _pipe += record.Length;
        _sndNxt += record.Length;
        if (fin)
        {
            _finSent = true;
        }

        _statBytesSent += length;
        ConsumePacingTokens(record.Length);
        if (_recovery == RecoveryMode.Fast)
        {
            _prrOut += record.Length;
        }

        if (Pipe >= _cc.Cwnd)
        {
            _cwndLimited = true;
        }

        _persistDeadline = null;
        _persistBackoff = 0;
        if (_rtxDeadline is null || _rtxIsProbe)
        {
            ArmRetransmissionDeadline(now, allowProbe: true);
        }
        else
        {
            MaybeArmProbe(now);
        }

        return true;
    }

    /// <summary>
    /// The sender stopped for a reason other than the congestion window (no data, or the peer's window); unless
    /// retransmissions are waiting for the window, the window should not grow (RFC 7661 spirit).
    /// </summary>
    private void NotCongestionLimited()
    {
        if (_lostPending == 0)
        {
            _cwndLimited = false;
        }
    }

    /// <summary>Pacing rate in bytes per second (0 = not pacing).</summary>
    private double PacingRate
    {
        get
        {
            if (!_options.Pacing || !_rtt.HasSample)
            {
                return 0;
            }

            var srtt = Math.Max(_rtt.SmoothedRtt.TotalSeconds, 1e-6);
            var gain = _cc.InSlowStart ? 2.0 : 1.25;
            return gain * Math.Max(_cc.Cwnd, 2L * DataMss) / srtt;
        }
    }

    /// <summary>Whether the token bucket holds a full segment; if not, records when it will.</summary>
    private bool PacingAllows(TimeSpan now)
    {
        var rate = PacingRate;
        if (rate <= 0)
        {
            return true;
        }

        // Bursts of about a millisecond, at least two segments and at most 1 MiB. Runtimes wake the engine with
        // millisecond timers, so a smaller cap would limit the rate to one bucket per wake-up (64 KiB per millisecond is
        // 0.5 Gbit/s) instead of the pacing rate.
        var burst = Math.Max(2.0 * DataMss, Math.Min(rate / 1000, 1024.0 * 1024));
        var elapsed = (now - _pacingRefilled).TotalSeconds;
        _pacingRefilled = now;
        _pacingTokens = Math.Min(burst, _pacingTokens + (elapsed > 0 ? elapsed * rate : 0));
        if (_pacingTokens >= DataMss)
        {
            return true;
        }

        var wait = (DataMss - _pacingTokens) / rate;
        _pacingDeadline = now + TimeSpan.FromTicks(Math.Max(1, (long)Math.Ceiling(wait * TimeSpan.TicksPerSecond)));
        return false;
    }

    private void ConsumePacingTokens(int bytes)
    {
        if (_pacingTokens != double.MaxValue)
        {
            _pacingTokens -= bytes;
        }
    }

    private int OptionsLength(bool withSack)
    {
        var length = _tsEnabled ? 12 : 0;
        var wanted = _outOfOrder.Count + (_dsackPending ? 1 : 0);
        if (withSack && _sackEnabled && wanted > 0)
        {
            var blocks = Math.Min(wanted, _tsEnabled ? 3 : 4);
            length += 4 + (8 * blocks);
        }

        return length;
    }

    /// <summary>Builds an outgoing header with the current ACK, window, timestamps and SACK blocks, and counts it.</summary>
    private TcpRepr BuildHeader(long sequencePosition, TcpFlags flags, TimeSpan now, bool withSack)
    {
        var header = new TcpRepr
        {
            SequenceNumber = SndWire(sequencePosition),
            AckNumber = RcvWire(_rcvNxt),
            Flags = flags | TcpFlags.Ack,
            Window = AdvertiseWindow(),
            Timestamp = _tsEnabled ? new TcpTimestamp(TsNow(now), _tsRecent) : null,
            SackBlocks = withSack ? BuildSackBlocks(_tsEnabled ? 3 : 4) : TcpSackBlocks.Empty,
        };
        _statSegmentsSent++;
        OnAckSent();
        return header;
    }

    private void OnAckSent()
    {
        _ackNow = false;
        _delayedAckDeadline = null;
        _pendingAckBytes = 0;
        _lastAckSent = _rcvNxt;
    }

    /// <summary>
    /// The window field to send, recording the right edge it advertises. Receiver-side silly window avoidance
    /// (RFC 9293 §3.8.6.2.2): the right edge only moves by at least min(buffer / 2, MSS).
    /// </summary>
    private ushort AdvertiseWindow()
    {
        var right = Math.Max(ReceiveLimit, _rcvNxt);
        var threshold = Math.Min(_options.ReceiveBufferSize / 2, _options.Mss);
        if (right > _lastAdvertisedRight && right - _lastAdvertisedRight < threshold && _lastAdvertisedRight >= _rcvNxt)
        {
            right = _lastAdvertisedRight;
        }

        var window = Math.Min((right - _rcvNxt) >> _rcvShift, ushort.MaxValue);
        var advertised = _rcvNxt + (window << _rcvShift);
        if (advertised > _lastAdvertisedRight)
        {
            _lastAdvertisedRight = advertised;
        }

        return (ushort)window;
    }
}
