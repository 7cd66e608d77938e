using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>
/// One stream's transmission control block: TCP semantics (RFC 9293) as a synchronous, sans-I/O state machine
/// that the SAL drives. It never sees addresses, ports or flowIDs; the SAL carries its segments (ports 0) inside
/// SAL packets, retransmits the handshake segments with its own control packets, and decides when the connection
/// state can be discarded.
/// </summary>
/// <remarks>
/// <para><b>Driving contract.</b> Every method is called from the engine's single thread with the current
/// monotonic time. After any call that may produce output (<see cref="OnSegment"/>, <see cref="OnSynAck"/>,
/// <see cref="OnHandshakeAck"/>, <see cref="Write"/>, <see cref="Read"/>, <see cref="CompleteWrites"/>,
/// <see cref="Abort"/>, <see cref="Resume"/>) and whenever <see cref="NextTimeout"/> is reached, the engine calls
/// <see cref="TryPoll"/> until it returns false and transmits each segment it yields. <see cref="TryPoll"/> runs
/// expired timers itself; <see cref="OnTimeout"/> does only that and is optional.</para>
/// <para><b>Handshake.</b> Active: <see cref="CreateSyn"/> → (SAL sends, and for each retransmission calls
/// <see cref="CreateSyn"/> again, which returns the identical segment) → <see cref="OnSynAck"/> →
/// <see cref="CreateHandshakeAck"/>. Passive: <see cref="OnSyn"/> → <see cref="CreateSynAck"/> (again identical on
/// retransmission) → <see cref="OnHandshakeAck"/> (or the first data segment through <see cref="OnSegment"/>).</para>
/// <para><b>Closing.</b> <see cref="CompleteWrites"/> queues our FIN after the buffered data; when
/// <see cref="FinAcknowledged"/> turns true the SAL may send its own FIN. <see cref="ReadsCompleted"/> turns true
/// once the peer's FIN arrived and every byte was read. <see cref="Abort"/> makes the next poll yield an RST.</para>
/// <para><b>Allocation.</b> Buffers are allocated lazily and grow geometrically up to their configured sizes;
/// steady-state transfer allocates nothing per segment.</para>
/// </remarks>
public sealed partial class StreamConnection
{
    internal const int DupThresh = 3;
    internal const int MaxSackRecent = 4;

    private readonly StreamOptions _options;
    private readonly ByteRing _sendRing;
    private readonly ByteRing _receiveRing;
    private readonly SentSegmentQueue _sent = new();
    private readonly RangeSet _outOfOrder;
    private readonly RttEstimator _rtt;
    private readonly CongestionController _cc;
    private readonly long[] _sackRecent = new long[MaxSackRecent];

    private readonly uint _iss;
    private readonly uint _tsOffset;
    private uint _irs;

    // Negotiated at the handshake.
    private int _sndMss;
    private int _rcvShift;
    private int _sndShift;
    private bool _sackEnabled;
    private bool _tsEnabled;

    // Handshake segment (our SYN or SYN-ACK), re-created identically.
    private TcpRepr _handshakeSegment;
    private int _handshakeTransmissions;
    private TimeSpan _handshakeFirstSent;

    // Send sequence space, as positions (octets since the ISS; the SYN is position 0).
    private long _sndUna;
    private long _sndNxt;
    private long _sndWnd;
    private long _maxSndWnd;
    private long _sndWl1;
    private long _sndWl2;
    private long _writeEnd;
    private bool _writesCompleted;
    private bool _finSent;
    private bool _finAcked;

    // Receive sequence space, as positions (the peer's SYN is position 0).
    private long _rcvNxt;
    private long _readOffset;
    private long _peerFinPosition = -1;
    private bool _peerFinReceived;
    private long _lastAdvertisedRight;
    private long _lastAckSent;
    private uint _tsRecent;
    private int _sackRecentCount;

    // Acknowledgement policy.
    private bool _ackNow;
    private TimeSpan? _delayedAckDeadline;
    private long _pendingAckBytes;
    private int _largestSegmentReceived;

    private StreamState _state;
    private StreamError _error;
    private bool _rstPending;
    private bool _frozen;
    private long _migrationHigh = -1;

    /// <summary>
    /// Creates a connection with a random initial sequence number (and timestamp offset) drawn from
    /// <paramref name="random"/>. It is <see cref="StreamState.Closed"/> until <see cref="CreateSyn"/> or
    /// <see cref="OnSyn"/> opens it; data written before that is sent once the connection is established.
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public StreamConnection(StreamOptions options, IRandomSource random, TimeSpan now)
        : this(options, random, now, null)
    {
    }

    /// <summary>Creates a connection with a given ISS (tests: sequence-number wrap-around).</summary>
    internal StreamConnection(StreamOptions options, IRandomSource random, TimeSpan now, uint? initialSequenceNumber, uint? timestampOffset = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        _options = options;
        _iss = initialSequenceNumber ?? random.NextUInt32();
        _tsOffset = timestampOffset ?? random.NextUInt32();
        _sendRing = new ByteRing(options.SendBufferSize);
        _receiveRing = new ByteRing(options.ReceiveBufferSize);
        _outOfOrder = new RangeSet(Math.Clamp(options.ReceiveBufferSize / 512, 16, 4096));
        _rtt = new RttEstimator(options.InitialRto, options.MinRto, options.MaxRto);
        _sndMss = options.Mss;
        _cc = CongestionController.Create(options.CongestionControl, DataMss);
        _lastReceived = now;
        _state = StreamState.Closed;
        if (options.UseWindowScale)
        {
            while (_rcvShift < 14 && (options.ReceiveBufferSize >> _rcvShift) > ushort.MaxValue)
            {
                _rcvShift++;
            }
        }
    }

    /// <summary>The options the connection was created with.</summary>
    public StreamOptions Options => _options;

    /// <summary>Current state.</summary>
    public StreamState State => _state;

    /// <summary>Why the connection ended abnormally, or <see cref="StreamError.None"/>.</summary>
    public StreamError Error => _error;

    /// <summary>Whether the connection finished (gracefully or not) or never opened.</summary>
    public bool IsClosed => _state == StreamState.Closed;

    /// <summary>Our initial sequence number.</summary>
    public uint InitialSequenceNumber => _iss;

    /// <summary>In-order bytes ready for <see cref="Read"/>.</summary>
    public int BytesAvailable => (int)(InOrderDataEnd - 1 - _readOffset);

    /// <summary>Bytes <see cref="Write"/> would accept now (0 once writes are completed or the connection failed).</summary>
    public int SendBufferFree =>
        _writesCompleted || _error != StreamError.None
            ? 0
            : (int)(_options.SendBufferSize - (_writeEnd - AckedDataOffset));

    /// <summary>Bytes written and not yet acknowledged by the peer.</summary>
    public int BytesUnacknowledged => (int)(_writeEnd - AckedDataOffset);

    /// <summary>The application called <see cref="CompleteWrites"/>.</summary>
    public bool WritesCompleted => _writesCompleted;

    /// <summary>Our FIN was acknowledged: every byte we wrote was delivered, and the SAL may send its FIN.</summary>
    public bool FinAcknowledged => _finAcked;

    /// <summary>The peer's FIN arrived (in order): it will send nothing more.</summary>
    public bool PeerFinReceived => _peerFinReceived;

    /// <summary>The peer's FIN arrived and every byte before it was read.</summary>
    public bool ReadsCompleted => _peerFinReceived && BytesAvailable == 0;

    /// <summary>Whether a reader should wake: data is available, the peer finished, or the connection failed.</summary>
    public bool Readable => BytesAvailable > 0 || _peerFinReceived || _error != StreamError.None;

    /// <summary>Whether a writer should wake: buffer space is free, or the connection failed.</summary>
    public bool Writable => SendBufferFree > 0 || _error != StreamError.None;

    /// <summary>Whether <see cref="Freeze"/> is in effect.</summary>
    public bool IsFrozen => _frozen;

    /// <summary>Sender maximum segment size in use (payload plus options).</summary>
    public int Mss => _sndMss;

    /// <summary>Timestamps were negotiated.</summary>
    public bool TimestampsEnabled => _tsEnabled;

    /// <summary>SACK was negotiated.</summary>
    public bool SackEnabled => _sackEnabled;

    /// <summary>Window-scale shift applied to the peer's window (0 without scaling).</summary>
    public int SendWindowShift => _sndShift;

    /// <summary>Window-scale shift we apply to the window we advertise (0 without scaling).</summary>
    public int ReceiveWindowShift => _rcvShift;

    /// <summary>A snapshot of the counters and estimators.</summary>
    public StreamStatistics Statistics => new()
    {
        BytesSent = _statBytesSent,
        BytesRetransmitted = _statBytesRetransmitted,
        BytesAcked = AckedDataOffset,
        BytesReceived = InOrderDataEnd - 1,
        SegmentsSent = _statSegmentsSent,
        SegmentsReceived = _statSegmentsReceived,
        Retransmissions = _statRetransmissions,
        FastRetransmits = _statFastRetransmits,
        Timeouts = _statTimeouts,
        TailLossProbes = _statTailLossProbes,
        WindowProbes = _statWindowProbes,
        KeepAliveProbes = _statKeepAliveProbes,
        SackBlocksReceived = _statSackBlocks,
        DsacksReceived = _statDsacks,
        SpuriousRecoveriesUndone = _statUndos,
        DuplicateSegmentsReceived = _statDuplicateSegments,
        OutOfOrderSegmentsReceived = _statOutOfOrderSegments,
        SpoofTransportResets = _statSpoofTransportRsts,
        SpoofSyns = _statSpoofSyns,
        SpoofFins = _statSpoofFins,
        AckUnacceptable = _statAckUnacceptable,
        DataOutOfWindow = _statDataOutOfWindow,
        ChallengeAcksSent = _statChallengeAcksSent,
        ChallengeAcksSuppressed = _statChallengeAcksSuppressed,
        SmoothedRtt = _rtt.SmoothedRtt,
        RttVariance = _rtt.RttVariance,
        MinRtt = _rtt.MinRtt,
        Rto = _rtt.Rto,
        CongestionWindow = _cc.Cwnd,
        SlowStartThreshold = _cc.Ssthresh,
        BytesInFlight = _pipe,
        SendWindow = _sndWnd,
        ReceiveWindow = Math.Max(0, ReceiveLimit - _rcvNxt),
        Mss = _sndMss,
    };

    /// <summary>
    /// Queues up to <paramref name="data"/>.Length bytes for sending; returns how many were accepted (0 when the
    /// send buffer is full, after <see cref="CompleteWrites"/>, or once the connection has failed or finished).
    /// </summary>
    public int Write(ReadOnlySpan<byte> data)
    {
        var n = Math.Min(data.Length, SendBufferFree);
        if (n <= 0)
        {
            return 0;
        }

        _sendRing.Write(_writeEnd, data[..n]);
        _writeEnd += n;
        return n;
    }

    /// <summary>
    /// Copies up to <paramref name="buffer"/>.Length in-order bytes out of the receive buffer; returns the count
    /// (0 when nothing is available: check <see cref="ReadsCompleted"/> and <see cref="Error"/>). Reading opens the
    /// receive window and may make the next poll yield a window update.
    /// </summary>
    public int Read(Span<byte> buffer)
    {
        var n = Math.Min(buffer.Length, BytesAvailable);
        if (n <= 0)
        {
            return 0;
        }

        _receiveRing.Read(_readOffset, buffer[..n]);
        _readOffset += n;
        _receiveRing.Release(_readOffset);
        MaybeScheduleWindowUpdate();
        return n;
    }

    /// <summary>
    /// Half-close: no more writes; our FIN follows the queued data. Idempotent. Before the connection is
    /// established the FIN waits for it.
    /// </summary>
    public void CompleteWrites()
    {
        if (_writesCompleted || _error != StreamError.None)
        {
            return;
        }

        _writesCompleted = true;
        if (_state == StreamState.Established)
        {
            _state = StreamState.FinWait1;
        }
        else if (_state == StreamState.CloseWait)
        {
            _state = StreamState.LastAck;
        }
    }

    /// <summary>
    /// Abortive close: discards both buffers, moves to <see cref="StreamState.Closed"/> with
    /// <see cref="StreamError.Aborted"/>, and (if the peer knows the connection) makes the next poll yield an RST.
    /// </summary>
    public void Abort()
    {
        if (_state == StreamState.Closed)
        {
            if (_error == StreamError.None && _rcvNxt == 0 && _handshakeTransmissions == 0)
            {
                Terminate(StreamError.Aborted); // Never opened.
            }

            return;
        }

        _rstPending = _state is not StreamState.SynSent and not StreamState.TimeWait;
        Terminate(StreamError.Aborted);
    }

    /// <summary>
    /// Migration has begun (docs/protocol.md §10): stop the retransmission, probe and keepalive timers and send no data
    /// until <see cref="Resume"/>. Acknowledgements still flow and incoming segments are still processed.
    /// </summary>
    public void Freeze()
    {
        if (_frozen)
        {
            return;
        }

        _frozen = true;
        _migrationHigh = _sndNxt;
    }

    /// <summary>
    /// Migration finished: retransmit all outstanding data at once (it may have been lost on the old path), restart
    /// the timers, and do not reduce the congestion window for losses signalled about data sent before the move.
    /// </summary>
    /// <param name="now">The current time.</param>
    /// <param name="outstandingLost">
    /// False when the old path is still up (a voluntary move): data in flight on it is probably delivered, so new data
    /// goes first and the usual loss detection (SACK, RACK, the retransmission timer) recovers what was not.
    /// </param>
    public void Resume(TimeSpan now, bool outstandingLost = true)
    {
        if (!_frozen)
        {
            return;
        }

        _frozen = false;
        if (!IsSynchronized)
        {
            return;
        }

        _rtt.ResetBackoff();
        _rtt.ResetMinRtt();
        _rackValid = false;
        _reorderDeadline = null;
        _consecutiveTimeouts = 0;
        _lastReceived = now;
        _keepAliveSent = 0;
        for (var i = 0; outstandingLost && i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (!s.Has(SentSegmentFlags.Sacked))
            {
                SetFlags(ref s, (s.Flags | SentSegmentFlags.Lost) & ~SentSegmentFlags.Retransmitted);
            }
        }

        if (_sent.Count > 0)
        {
            ArmRetransmissionDeadline(now, allowProbe: false);
        }
        else
        {
            _rtxDeadline = null;
        }

        _persistDeadline = null;
        _persistProbes = 0;
        if (_sndWnd == 0 && HasUnsentData)
        {
            _probePending = true;
        }
    }

    /// <summary>
    /// The path's segment size changed (the engine re-derived it, e.g. after a migration): use at most
    /// <paramref name="mss"/> (payload plus options) from now on, never more than the peer announced.
    /// </summary>
    public void UpdateMss(int mss)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(mss, 88);
        _sndMss = Math.Min(mss, _peerMss > 0 ? _peerMss : mss);
        _cc.SetMss(DataMss);
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"Stream {_state} una={SndWire(_sndUna)} nxt={SndWire(_sndNxt)} rcv={RcvWire(_rcvNxt)} cwnd={_cc.Cwnd} err={_error}";

    private bool IsSynchronized => _state is StreamState.Established or StreamState.FinWait1 or StreamState.FinWait2
        or StreamState.Closing or StreamState.TimeWait or StreamState.CloseWait or StreamState.LastAck;

    /// <summary>Payload bytes per full segment: the MSS less the timestamps option.</summary>
    private int DataMss => _sndMss - (_tsEnabled ? 12 : 0);

    /// <summary>Stream offset of the first byte the peer has not acknowledged.</summary>
    private long AckedDataOffset => Math.Clamp(_sndUna - 1, 0, _writeEnd);

    /// <summary>Position after the last in-order data byte (the FIN excluded).</summary>
    private long InOrderDataEnd => _peerFinReceived ? _rcvNxt - 1 : Math.Max(_rcvNxt, 1);

    /// <summary>First position we cannot store (receive buffer full).</summary>
    private long ReceiveLimit => 1 + _readOffset + _options.ReceiveBufferSize;

    private bool HasUnsentData => !_finSent && _sndNxt < 1 + _writeEnd;

    private uint SndWire(long position) => unchecked(_iss + (uint)position);

    private uint RcvWire(long position) => unchecked(_irs + (uint)position);

    private long SndPosition(uint wire) => _sndUna + unchecked((int)(wire - SndWire(_sndUna)));

    private long RcvPosition(uint wire) => _rcvNxt + unchecked((int)(wire - RcvWire(_rcvNxt)));

    private uint TsNow(TimeSpan now) => unchecked((uint)(now.Ticks / TimeSpan.TicksPerMillisecond) + _tsOffset);

    private void Terminate(StreamError error)
    {
        _state = StreamState.Closed;
        _error = error;
        _sent.Clear();
        _pipe = 0;
        _sackedBytes = 0;
        _lostPending = 0;
        _everRetransmitted = 0;
        _outOfOrder.Clear();
        if (error != StreamError.None)
        {
            // Discard unread and unsent data (RFC 9293 §3.10.7.4: queues are flushed on reset).
            _readOffset = InOrderDataEnd - 1;
            _receiveRing.Release(_readOffset);
        }

        _ackNow = false;
        _delayedAckDeadline = null;
        _rtxDeadline = null;
        _reorderDeadline = null;
        _persistDeadline = null;
        _probePending = false;
        _keepAlivePending = false;
    }
}
