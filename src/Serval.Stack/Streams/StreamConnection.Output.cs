using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>Segment transmission: retransmissions, new data under the congestion and peer windows, probes, ACKs.</summary>
public sealed partial class StreamConnection
{
    private bool _probePending;
    private bool _swsOverride;
    private bool _keepAlivePending;

    /// <summary>The sender last stopped at the congestion window (only then may the window grow, RFC 7661 spirit).</summary>
    private bool _cwndLimited;

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
        if (!TryPollSegment(now, payloadBuffer.Length, out segment, out var position, out payloadLength))
        {
            return false;
        }

        CopyPayload(position, payloadBuffer[..payloadLength]);
        return true;
    }

    /// <summary>
    /// As <see cref="TryPoll(TimeSpan, Span{byte}, out TcpRepr, out int)"/>, without copying the payload: the segment
    /// carries the <paramref name="payloadLength"/> (at most <paramref name="maxPayload"/>) bytes of the send buffer at
    /// <paramref name="payloadPosition"/>, which the caller copies with <see cref="CopyPayload"/> or
    /// <see cref="CopyPayloadWithSum"/> straight into the packet it builds, before anything else touches the
    /// connection (docs/stream-transport.md, "Output path").
    /// </summary>
    public bool TryPollSegment(TimeSpan now, int maxPayload, out TcpRepr segment, out long payloadPosition, out int payloadLength)
    {
        payloadLength = 0;
        payloadPosition = 0;
        if (_rstPending)
        {
            _rstPending = false;
            _statSegmentsSent++;
            segment = new TcpRepr
            {
                SequenceNumber = SndWire(_send.Nxt),
                AckNumber = RcvWire(_receive.Next),
                Flags = TcpFlags.Rst | TcpFlags.Ack,
            };
            return true;
        }

        segment = default;
        if (!IsSynchronized)
        {
            return false;
        }

        _pacer.ClearDeadline();
        OnTimeout(now);
        if (!IsSynchronized)
        {
            return false;
        }

        if (!_frozen)
        {
            if (TrySendRetransmission(now, maxPayload, out segment, out payloadPosition, out payloadLength))
            {
                return true;
            }

            if (_rack.TakeProbeRequest())
            {
                if (TrySendTailLossProbe(now, maxPayload, out segment, out payloadPosition, out payloadLength))
                {
                    return true;
                }
            }

            if (TrySendNewData(now, maxPayload, ignoreCongestionWindow: false, out segment, out payloadPosition, out payloadLength))
            {
                return true;
            }

            if (_probePending)
            {
                _probePending = false;
                if (_scoreboard.Count == 0 && _send.HasUnsentData && _sndWnd == 0)
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
                    segment = BuildHeader(_send.Una - 1, TcpFlags.None, now, withSack: false);
                    return true;
                }
            }
        }

        if (_keepAlivePending)
        {
            _keepAlivePending = false;
            _statKeepAliveProbes++;
            segment = BuildHeader(_send.Nxt - 1, TcpFlags.None, now, withSack: false);
            return true;
        }

        if (_ackNow)
        {
            segment = BuildHeader(_send.Nxt, TcpFlags.None, now, withSack: true);
            return true;
        }

        return false;
    }

    /// <summary>Copies <paramref name="destination"/>.Length bytes of the send buffer at <paramref name="payloadPosition"/> (from <see cref="TryPollSegment"/>).</summary>
    public void CopyPayload(long payloadPosition, Span<byte> destination) => _send.CopyOut(payloadPosition, destination);

    /// <summary>
    /// As <see cref="CopyPayload"/>, adding the copied bytes to an Internet checksum running sum in the same pass
    /// (<see cref="InternetChecksum.CopyAndAdd"/>): the payload is read once on its way to the link.
    /// </summary>
    public ulong CopyPayloadWithSum(long payloadPosition, Span<byte> destination) => _send.CopyOutWithSum(payloadPosition, destination);

    private bool TrySendRetransmission(TimeSpan now, int bufferLimit, out TcpRepr segment, out long payloadPosition, out int payloadLength)
    {
        segment = default;
        payloadLength = 0;
        payloadPosition = 0;
        if (_scoreboard.LostPending == 0)
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

        var index = _scoreboard.FindFirstLostPending(_send.Una);
        if (index < 0)
        {
            return false;
        }

        var withSack = true;
        var maxPayload = Math.Min(_sndMss - OptionsLength(withSack), bufferLimit);
        if (_scoreboard[index].DataLength > maxPayload)
        {
            withSack = false;
            maxPayload = Math.Min(_sndMss - OptionsLength(withSack), bufferLimit);
            if (_scoreboard[index].DataLength > maxPayload)
            {
                _scoreboard.SplitLost(index, maxPayload);
            }
        }

        ref var s = ref _scoreboard[index];
        var dataLength = s.DataLength;
        payloadPosition = s.Start;
        var flags = s.Has(SentSegmentFlags.Fin) ? TcpFlags.Fin | TcpFlags.Psh : TcpFlags.None;
        _scoreboard.OnRetransmit(ref s, now, repair: true);
        _pacer.Consume(s.Length);
        _statRetransmissions++;
        _statBytesRetransmitted += dataLength;
        _statBytesSent += dataLength;
        _recovery.OnRetransmitted(s.Length);

        segment = BuildHeader(s.Start, flags, now, withSack);
        payloadLength = dataLength;
        if (_rtxDeadline is null || _rtxIsProbe || index == 0)
        {
            // Like Linux, retransmitting the oldest segment restarts the timer: its repair needs a round trip.
            ArmRetransmissionDeadline(now, allowProbe: false);
        }

        return true;
    }

    private bool TrySendTailLossProbe(TimeSpan now, int bufferLimit, out TcpRepr segment, out long payloadPosition, out int payloadLength)
    {
        segment = default;
        payloadLength = 0;
        payloadPosition = 0;
        if (_scoreboard.Count == 0)
        {
            return false;
        }

        // RFC 8985 §7.3: new data if the peer's window allows, else the last segment again.
        if (!TrySendNewData(now, bufferLimit, ignoreCongestionWindow: true, out segment, out payloadPosition, out payloadLength))
        {
            var index = _scoreboard.Count - 1;
            while (index >= 0 && _scoreboard[index].Has(SentSegmentFlags.Sacked))
            {
                index--;
            }

            if (index < 0 || _scoreboard[index].DataLength > Math.Min(_sndMss - OptionsLength(false), bufferLimit))
            {
                return false;
            }

            ref var s = ref _scoreboard[index];
            var dataLength = s.DataLength;
            payloadPosition = s.Start;
            var flags = s.Has(SentSegmentFlags.Fin) ? TcpFlags.Fin | TcpFlags.Psh : TcpFlags.None;
            _scoreboard.OnRetransmit(ref s, now, repair: false);

            _statRetransmissions++;
            _statBytesRetransmitted += dataLength;
            _statBytesSent += dataLength;
            segment = BuildHeader(s.Start, flags, now, withSack: false);
            payloadLength = dataLength;
        }

        _statTailLossProbes++;
        _rack.OnProbeSent(_send.Nxt);
        ArmRetransmissionDeadline(now, allowProbe: false);
        return true;
    }

    private bool TrySendNewData(TimeSpan now, int bufferLimit, bool ignoreCongestionWindow, out TcpRepr segment, out long payloadPosition, out int payloadLength)
    {
        segment = default;
        payloadLength = 0;
        payloadPosition = 0;
        var finPending = _send.FinPending;
        var unsent = _send.Unsent;
        if (unsent == 0 && !finPending)
        {
            NotCongestionLimited(); // Application-limited.
            return false;
        }

        if (_scoreboard.Count >= MaxSegmentsInFlight)
        {
            return false;
        }

        var maxPayload = Math.Min(_sndMss - OptionsLength(true), bufferLimit);
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

            var windowRoom = _send.Una + _sndWnd - _send.Nxt;
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
            else if (length < maxPayload && !_options.NoDelay && _send.Nxt > _send.Una && !finPending)
            {
                return false; // Nagle (RFC 9293 §3.7.4): wait until the outstanding data is acknowledged.
            }

            _swsOverride = false;
        }

        var fin = finPending && length == unsent;
        var flags = (fin ? TcpFlags.Fin : TcpFlags.None) | (length > 0 && length == unsent ? TcpFlags.Psh : TcpFlags.None);
        payloadPosition = _send.Nxt;
        var record = new SentSegment
        {
            Start = _send.Nxt,
            Length = (int)length + (fin ? 1 : 0),
            SentAt = now,
            Flags = fin ? SentSegmentFlags.Fin : SentSegmentFlags.None,
        };
        segment = BuildHeader(_send.Nxt, flags, now, withSack: true);
        payloadLength = (int)length;
        _scoreboard.Add(record);
        _send.OnTransmitted(record.Length, fin);
        _statBytesSent += length;
        _pacer.Consume(record.Length);
        _recovery.OnSent(record.Length);

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
        if (_scoreboard.LostPending == 0)
        {
            _cwndLimited = false;
        }
    }

    /// <summary>Whether pacing lets a full segment go now (if not, the pacer records when it will).</summary>
    private bool PacingAllows(TimeSpan now) => _pacer.Allows(now, Pacer.Rate(_options.Pacing, _rtt, _cc, DataMss), DataMss);

    private int OptionsLength(bool withSack)
    {
        var length = _tsEnabled ? 12 : 0;
        var wanted = _receive.SackBlocksWanted;
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
            AckNumber = RcvWire(_receive.Next),
            Flags = flags | TcpFlags.Ack,
            Window = AdvertiseWindow(),
            Timestamp = _tsEnabled ? new TcpTimestamp(TsNow(now), _tsRecent) : null,
            SackBlocks = withSack ? _receive.BuildSackBlocks(_irs, _tsEnabled ? 3 : 4) : TcpSackBlocks.Empty,
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
        _lastAckSent = _receive.Next;
    }

    /// <summary>The window field to send (receiver-side silly window avoidance is the receive buffer's).</summary>
    private ushort AdvertiseWindow() => _receive.AdvertiseWindow(_rcvShift, _options.Mss);
}
