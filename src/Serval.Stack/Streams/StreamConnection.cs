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
/// <para><b>Why this type is large.</b> It is the TCB: RFC 9293's event processing (§3.10) for the handshake, arrival,
/// output and timers, which reads and changes the connection state as one. Everything with state of its own is a part
/// of its own — <see cref="SendBuffer"/>, <see cref="ReceiveBuffer"/>, <see cref="SackScoreboard"/>,
/// <see cref="RackLossDetector"/>, <see cref="LossRecovery"/>, the congestion controller, <see cref="Pacer"/>,
/// <see cref="RttEstimator"/> — and the partial files split what remains by concern (docs/stream-transport.md,
/// "Structure").</para>
/// </remarks>
public sealed partial class StreamConnection
{
    private readonly StreamOptions _options;
    private readonly SendBuffer _send;
    private readonly ReceiveBuffer _receive;
    private readonly SackScoreboard _scoreboard = new();
    private readonly RttEstimator _rtt;
    private readonly RackLossDetector _rack;
    private readonly CongestionController _cc;
    private readonly LossRecovery _recovery;
    private Pacer _pacer = new();

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

    // The peer's window (the send sequence space itself is the send buffer's), as positions.
    private long _sndWnd;
    private long _maxSndWnd;
    private long _sndWl1;
    private long _sndWl2;

    // What our last ACK said, and the peer's timestamp to echo.
    private long _lastAckSent;
    private uint _tsRecent;

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
        _send = new SendBuffer(options.SendBufferSize);
        _receive = new ReceiveBuffer(options.ReceiveBufferSize);
        _rtt = new RttEstimator(options.InitialRto, options.MinRto, options.MaxRto);
        _rack = new RackLossDetector(_rtt);
        _sndMss = options.Mss;
        _cc = CongestionController.Create(options.CongestionControl, DataMss);
        _recovery = new LossRecovery(_cc);
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
    public int BytesAvailable => _receive.BytesAvailable;

    /// <summary>Bytes <see cref="Write"/> would accept now (0 once writes are completed or the connection failed).</summary>
    public int SendBufferFree =>
        _send.WritesCompleted || _error != StreamError.None
            ? 0
            : (int)(_options.SendBufferSize - _send.Buffered);

    /// <summary>Bytes written and not yet acknowledged by the peer.</summary>
    public int BytesUnacknowledged => (int)_send.Buffered;

    /// <summary>The application called <see cref="CompleteWrites"/>.</summary>
    public bool WritesCompleted => _send.WritesCompleted;

    /// <summary>Our FIN was acknowledged: every byte we wrote was delivered, and the SAL may send its FIN.</summary>
    public bool FinAcknowledged => _send.FinAcked;

    /// <summary>The peer's FIN arrived (in order): it will send nothing more.</summary>
    public bool PeerFinReceived => _receive.FinReceived;

    /// <summary>The peer's FIN arrived and every byte before it was read.</summary>
    public bool ReadsCompleted => _receive.FinReceived && BytesAvailable == 0;

    /// <summary>Whether a reader should wake: data is available, the peer finished, or the connection failed.</summary>
    public bool Readable => BytesAvailable > 0 || _receive.FinReceived || _error != StreamError.None;

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
        BytesAcked = _send.AckedDataOffset,
        BytesReceived = _receive.InOrderDataEnd - 1,
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
        BytesInFlight = _scoreboard.InFlight,
        SendWindow = _sndWnd,
        ReceiveWindow = _receive.Window,
        Mss = _sndMss,
        BufferStorageBytes = BufferStorageBytes,
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

        _send.Write(data[..n]);
        return n;
    }

    /// <summary>
    /// Copies up to <paramref name="buffer"/>.Length in-order bytes out of the receive buffer; returns the count
    /// (0 when nothing is available: check <see cref="ReadsCompleted"/> and <see cref="Error"/>). Reading opens the
    /// receive window and may make the next poll yield a window update.
    /// </summary>
    public int Read(Span<byte> buffer)
    {
        var n = _receive.Read(buffer);
        if (n > 0)
        {
            MaybeScheduleWindowUpdate();
        }

        return n;
    }

    /// <summary>
    /// Bytes of buffer storage the connection holds now: send and receive data, out-of-order ranges and the record of
    /// segments in flight. 0 for a connection that never carried data or gave its storage back while idle
    /// (<see cref="StreamOptions.IdleBufferRelease"/>); the fixed control state is not counted.
    /// </summary>
    public int BufferStorageBytes => _send.StorageBytes + _receive.StorageBytes + _scoreboard.StorageBytes;

    /// <summary>
    /// Gives back the storage of every buffer that holds nothing (all written bytes acknowledged; all received bytes
    /// read and no gap open; nothing in flight) and returns the bytes released. Buffers are allocated again when data
    /// flows. The connection calls this itself <see cref="StreamOptions.IdleBufferRelease"/> after it last heard from
    /// the peer; a host short of memory may call it at any time.
    /// </summary>
    public int ReleaseIdleBuffers()
    {
        var released = _send.ReleaseStorage() + _receive.ReleaseStorage();
        if (_scoreboard.Count == 0)
        {
            released += _scoreboard.ReleaseStorage();
        }

        return released;
    }

    /// <summary>
    /// Half-close: no more writes; our FIN follows the queued data. Idempotent. Before the connection is
    /// established the FIN waits for it.
    /// </summary>
    public void CompleteWrites()
    {
        if (_send.WritesCompleted || _error != StreamError.None)
        {
            return;
        }

        _send.CompleteWrites();
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
            if (_error == StreamError.None && _receive.Next == 0 && _handshakeTransmissions == 0)
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
        _migrationHigh = _send.Nxt;
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
        _rack.Reset();
        _consecutiveTimeouts = 0;
        _lastReceived = now;
        _keepAliveSent = 0;
        if (outstandingLost)
        {
            _scoreboard.MarkUnsackedLost();
        }

        if (_scoreboard.Count > 0)
        {
            ArmRetransmissionDeadline(now, allowProbe: false);
        }
        else
        {
            _rtxDeadline = null;
        }

        _persistDeadline = null;
        _persistProbes = 0;
        if (_sndWnd == 0 && _send.HasUnsentData)
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
        $"Stream {_state} una={SndWire(_send.Una)} nxt={SndWire(_send.Nxt)} rcv={RcvWire(_receive.Next)} cwnd={_cc.Cwnd} err={_error}";

    private bool IsSynchronized => _state is StreamState.Established or StreamState.FinWait1 or StreamState.FinWait2
        or StreamState.Closing or StreamState.TimeWait or StreamState.CloseWait or StreamState.LastAck;

    /// <summary>Payload bytes per full segment: the MSS less the timestamps option.</summary>
    private int DataMss => _sndMss - (_tsEnabled ? 12 : 0);

    private uint SndWire(long position) => unchecked(_iss + (uint)position);

    private uint RcvWire(long position) => unchecked(_irs + (uint)position);

    private long SndPosition(uint wire) => _send.Una + unchecked((int)(wire - SndWire(_send.Una)));

    private long RcvPosition(uint wire) => _receive.Next + unchecked((int)(wire - RcvWire(_receive.Next)));

    private uint TsNow(TimeSpan now) => unchecked((uint)(now.Ticks / TimeSpan.TicksPerMillisecond) + _tsOffset);

    private void Terminate(StreamError error)
    {
        _state = StreamState.Closed;
        _error = error;
        _scoreboard.Clear();

        // On an error, discard unread and unsent data (RFC 9293 §3.10.7.4: queues are flushed on reset).
        _receive.Clear(discardUnread: error != StreamError.None);

        _ackNow = false;
        _delayedAckDeadline = null;
        _rtxDeadline = null;
        _rack.Clear();
        _persistDeadline = null;
        _probePending = false;
        _keepAlivePending = false;
    }
}
