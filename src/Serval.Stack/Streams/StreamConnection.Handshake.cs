using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>The three-way handshake, piggy-backed on the SAL's (RFC 9293 §3.5; options RFC 7323, RFC 2018).</summary>
public sealed partial class StreamConnection
{
    /// <summary>
    /// Active open: returns our SYN (seq = ISS; MSS, window scale, SACK-permitted and timestamps as configured;
    /// window unscaled) and moves to <see cref="StreamState.SynSent"/>. Call it again for every retransmission
    /// of the SAL SYN: it returns the identical segment and lets Karn's rule skip the handshake RTT sample.
    /// </summary>
    /// <exception cref="InvalidOperationException">The connection is past SYN-SENT.</exception>
    public TcpRepr CreateSyn(TimeSpan now)
    {
        if (_state == StreamState.SynSent)
        {
            _handshakeTransmissions++;
            _statSegmentsSent++;
            return _handshakeSegment;
        }

        if (_state != StreamState.Closed || _handshakeTransmissions > 0 || _error != StreamError.None)
        {
            throw new InvalidOperationException($"CreateSyn is only valid on a new connection (state {_state}).");
        }

        _handshakeSegment = new TcpRepr
        {
            SequenceNumber = _iss,
            Flags = TcpFlags.Syn,
            Window = HandshakeWindow(),
            MaxSegmentSize = (ushort)_options.Mss,
            WindowScale = _options.UseWindowScale ? (byte)_rcvShift : null,
            SackPermitted = _options.UseSack,
            Timestamp = _options.UseTimestamps ? new TcpTimestamp(TsNow(now), 0) : null,
        };
        _handshakeTransmissions = 1;
        _handshakeFirstSent = now;
        _send.SetSequence(0, 1);
        _state = StreamState.SynSent;
        _statSegmentsSent++;
        return _handshakeSegment;
    }

    /// <summary>
    /// Active open: the peer's SYN-ACK. Returns true when it acknowledges our SYN and the connection is now
    /// <see cref="StreamState.Established"/> (options negotiated: each used only when both sides offered it); the
    /// SAL then sends <see cref="CreateHandshakeAck"/>. Returns false for an unacceptable segment, which changes
    /// nothing — except an RST acknowledging our SYN, which closes the connection with
    /// <see cref="StreamError.Refused"/>.
    /// </summary>
    public bool OnSynAck(in TcpRepr synAck, TimeSpan now)
    {
        if (_state != StreamState.SynSent)
        {
            return false;
        }

        var acksOurSyn = synAck.Has(TcpFlags.Ack) && synAck.AckNumber == unchecked(_iss + 1);
        if (synAck.Has(TcpFlags.Rst))
        {
            if (acksOurSyn)
            {
                _statSegmentsReceived++;
                Terminate(StreamError.Refused);
            }

            return false;
        }

        if (!acksOurSyn || !synAck.Has(TcpFlags.Syn))
        {
            return false;
        }

        _statSegmentsReceived++;
        _irs = synAck.SequenceNumber;
        _receive.Open();
        _lastAckSent = 1;
        _receive.OnHandshakeWindow(_handshakeSegment.Window);
        Negotiate(synAck, weOffered: _handshakeSegment);
        if (_tsEnabled && synAck.Timestamp is { } ts)
        {
            _tsRecent = ts.Value;
        }

        _send.SetSequence(1, 1);
        _sndWnd = synAck.Window; // Never scaled in a SYN (RFC 7323 §2.2).
        _maxSndWnd = _sndWnd;
        _sndWl1 = 0;
        _sndWl2 = 1;
        if (_handshakeTransmissions == 1)
        {
            _rtt.OnSample(now - _handshakeFirstSent);
        }

        _lastReceived = now;
        Establish();
        return true;
    }

    /// <summary>
    /// Active open: the third segment of the handshake (a pure ACK of the peer's SYN). May be called again when
    /// the SAL has to repeat its ACK; it always describes the current acknowledgement state.
    /// </summary>
    /// <exception cref="InvalidOperationException">No SYN-ACK was accepted.</exception>
    public TcpRepr CreateHandshakeAck()
    {
        if (_receive.Next == 0 || _state == StreamState.SynReceived)
        {
            throw new InvalidOperationException($"CreateHandshakeAck needs an accepted SYN-ACK (state {_state}).");
        }

        _statSegmentsSent++;
        var ack = new TcpRepr
        {
            SequenceNumber = SndWire(_send.Nxt),
            AckNumber = RcvWire(_receive.Next),
            Flags = TcpFlags.Ack,
            Window = AdvertiseWindow(),
            Timestamp = _tsEnabled ? new TcpTimestamp(TsNow(_lastReceived), _tsRecent) : null,
        };
        OnAckSent();
        return ack;
    }

    /// <summary>
    /// Passive open: the peer's SYN (the SAL matched a listener). Returns true and moves to
    /// <see cref="StreamState.SynReceived"/>; a repeat of the same SYN returns true again; anything else false.
    /// </summary>
    public bool OnSyn(in TcpRepr syn, TimeSpan now)
    {
        if (!syn.Has(TcpFlags.Syn) || syn.Has(TcpFlags.Ack) || syn.Has(TcpFlags.Rst) || syn.Has(TcpFlags.Fin))
        {
            return false;
        }

        if (_state == StreamState.SynReceived)
        {
            return syn.SequenceNumber == _irs;
        }

        if (_state != StreamState.Closed || _handshakeTransmissions > 0 || _error != StreamError.None)
        {
            return false;
        }

        _statSegmentsReceived++;
        _irs = syn.SequenceNumber;
        _receive.Open();
        _lastAckSent = 1;
        _peerSyn = syn;
        _send.SetSequence(0, 1);
        _sndWnd = syn.Window;
        _maxSndWnd = _sndWnd;
        _sndWl1 = 0;
        _sndWl2 = 0;
        _lastReceived = now;
        _state = StreamState.SynReceived;
        return true;
    }

    /// <summary>
    /// Passive open: our SYN-ACK (seq = ISS, ack = peer ISS + 1, echoing only the options the peer offered).
    /// Call it again for every retransmission: it returns the identical segment.
    /// </summary>
    /// <exception cref="InvalidOperationException">No SYN was accepted.</exception>
    public TcpRepr CreateSynAck(TimeSpan now)
    {
        if (_state != StreamState.SynReceived)
        {
            throw new InvalidOperationException($"CreateSynAck needs an accepted SYN (state {_state}).");
        }

        _statSegmentsSent++;
        if (_handshakeTransmissions > 0)
        {
            _handshakeTransmissions++;
            return _handshakeSegment;
        }

        var offered = new TcpRepr
        {
            MaxSegmentSize = (ushort)_options.Mss,
            WindowScale = _options.UseWindowScale ? (byte)_rcvShift : null,
            SackPermitted = _options.UseSack,
            Timestamp = _options.UseTimestamps ? new TcpTimestamp(0, 0) : null,
        };
        Negotiate(_peerSyn, offered);
        if (_tsEnabled && _peerSyn.Timestamp is { } ts)
        {
            _tsRecent = ts.Value;
        }

        var window = HandshakeWindow();
        _receive.OnHandshakeWindow(window);
        _handshakeSegment = new TcpRepr
        {
            SequenceNumber = _iss,
            AckNumber = unchecked(_irs + 1),
            Flags = TcpFlags.Syn | TcpFlags.Ack,
            Window = window,
            MaxSegmentSize = (ushort)_options.Mss,
            WindowScale = _peerSyn.WindowScale.HasValue && _options.UseWindowScale ? (byte)_rcvShift : null,
            SackPermitted = _sackEnabled,
            Timestamp = _tsEnabled ? new TcpTimestamp(TsNow(now), _tsRecent) : null,
        };
        _handshakeTransmissions = 1;
        _handshakeFirstSent = now;
        return _handshakeSegment;
    }

    /// <summary>
    /// Passive open: the handshake ACK (with any data or FIN it carries). Returns true when it acknowledges our
    /// SYN-ACK and the connection is <see cref="StreamState.Established"/> (or later, if it carried a FIN); false
    /// for an unacceptable segment, which changes nothing (an RST in SYN-RECEIVED closes with
    /// <see cref="StreamError.Reset"/> and also returns false). Equivalent to passing the segment to
    /// <see cref="OnSegment"/>.
    /// </summary>
    public bool OnHandshakeAck(in TcpRepr ack, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        if (_state != StreamState.SynReceived)
        {
            return IsSynchronized;
        }

        OnSegment(ack, payload, now);
        return IsSynchronized;
    }

    private ushort HandshakeWindow() => (ushort)Math.Min(_options.ReceiveBufferSize, ushort.MaxValue);

    private void Negotiate(in TcpRepr peer, in TcpRepr weOffered)
    {
        _peerMss = peer.MaxSegmentSize is { } m && m >= 64 ? m : 536;
        _sndMss = Math.Min(_options.Mss, _peerMss);
        if (weOffered.WindowScale.HasValue && peer.WindowScale is { } ws)
        {
            _sndShift = Math.Min((int)ws, 14);
        }
        else
        {
            _sndShift = 0;
            _rcvShift = 0;
        }

        _sackEnabled = weOffered.SackPermitted && peer.SackPermitted;
        _receive.SackEnabled = _sackEnabled;
        _tsEnabled = weOffered.Timestamp.HasValue && peer.Timestamp.HasValue;
        _cc.SetMss(DataMss);
        _cc.Cwnd = CongestionController.InitialWindow(DataMss);
    }

    private void Establish()
    {
        _state = _send.WritesCompleted ? StreamState.FinWait1 : StreamState.Established;
    }

    /// <summary>
    /// The window scale this side offers for a receive buffer of <paramref name="options"/>' size (the shift that fits
    /// the buffer in 16 bits), or 0 without window scaling.
    /// </summary>
    internal static int ReceiveShiftFor(StreamOptions options)
    {
        var shift = 0;
        if (options.UseWindowScale)
        {
            while (shift < 14 && (options.ReceiveBufferSize >> shift) > ushort.MaxValue)
            {
                shift++;
            }
        }

        return shift;
    }

    /// <summary>
    /// A SYN-ACK answering <paramref name="syn"/> without any connection state (a SYN cookie, docs/engine.md): sequence
    /// number <paramref name="iss"/>, the options a connection created by <see cref="EstablishFromCookie"/> will use, and a
    /// timestamp on <paramref name="timestampOffset"/>'s clock.
    /// </summary>
    internal static TcpRepr CreateCookieSynAck(StreamOptions options, in TcpRepr syn, uint iss, uint timestampOffset, TimeSpan now)
    {
        var useTs = options.UseTimestamps && syn.Timestamp.HasValue;
        return new TcpRepr
        {
            SequenceNumber = iss,
            AckNumber = unchecked(syn.SequenceNumber + 1),
            Flags = TcpFlags.Syn | TcpFlags.Ack,
            Window = (ushort)Math.Min(options.ReceiveBufferSize, ushort.MaxValue),
            MaxSegmentSize = (ushort)options.Mss,
            WindowScale = syn.WindowScale.HasValue && options.UseWindowScale ? (byte)ReceiveShiftFor(options) : null,
            SackPermitted = options.UseSack && syn.SackPermitted,
            Timestamp = useTs ? new TcpTimestamp(unchecked((uint)(now.Ticks / TimeSpan.TicksPerMillisecond) + timestampOffset), syn.Timestamp!.Value.Value) : null,
        };
    }

    /// <summary>
    /// Passive open from a verified SYN cookie: <paramref name="syn"/> is the peer's SYN as far as the cookie recorded it
    /// (sequence number and options), <paramref name="ack"/> the handshake ACK with any data it carries. The connection
    /// must be new and have been created with the cookie's ISS and timestamp offset. Returns true when the connection is
    /// established (as <see cref="OnHandshakeAck"/> would).
    /// </summary>
    internal bool EstablishFromCookie(in TcpRepr syn, in TcpRepr ack, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        if (!OnSyn(syn, now))
        {
            return false;
        }

        _ = CreateSynAck(now);
        _handshakeTransmissions = 2; // No handshake RTT sample from our clock: the timestamp echo gives one below.
        OnSegment(ack, payload, now);
        if (!IsSynchronized)
        {
            return false;
        }

        if (_tsEnabled && ack.Timestamp is { } ts && ts.EchoReply != 0)
        {
            var ms = unchecked((int)(TsNow(now) - ts.EchoReply));
            if (ms is >= 0 and < 60_000)
            {
                _rtt.OnSample(TimeSpan.FromMilliseconds(ms));
            }
        }

        return true;
    }

    /// <summary>What TIME-WAIT needs to acknowledge a retransmitted FIN once the connection's buffers are gone.</summary>
    internal TimeWaitTcp TimeWaitState => new(SndWire(_send.Nxt), RcvWire(_receive.Next), _tsEnabled, _tsOffset, _tsRecent);

    /// <summary>The ACK TIME-WAIT sends for a retransmitted FIN (RFC 9293 §3.10.7.4), from the state kept for it.</summary>
    internal static TcpRepr CreateTimeWaitAck(in TimeWaitTcp tw, TimeSpan now) => new()
    {
        SequenceNumber = tw.SndNxt,
        AckNumber = tw.RcvNxt,
        Flags = TcpFlags.Ack,
        Window = 0,
        Timestamp = tw.Timestamps ? new TcpTimestamp(unchecked((uint)(now.Ticks / TimeSpan.TicksPerMillisecond) + tw.TimestampOffset), tw.TimestampRecent) : null,
    };

    /// <summary>Retransmission timeouts so far (the SAL watches it to repeat a handshake ACK that may have been lost).</summary>
    internal long RetransmissionTimeouts => _statTimeouts;

    /// <summary>
    /// Active open: the handshake ACK again, sent with the sequence number of the first unacknowledged byte (the value it
    /// had the first time while nothing was acknowledged), so that a server that answered with a SYN cookie can verify it
    /// even after data followed.
    /// </summary>
    internal TcpRepr CreateRepeatedHandshakeAck()
    {
        var ack = CreateHandshakeAck();
        return ack with { SequenceNumber = SndWire(_send.Una) };
    }
}
