using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// One SAL flow: a connection's control channel (verno/ackno, nonces, the single-slot retransmission queue),
/// addressing, and its transport (a <see cref="StreamConnection"/> or a datagram queue).
/// </summary>
internal sealed class Flow(SocketHandle handle, TransportProtocol protocol, FlowId localFlow, Nonce localNonce, ControlChannel control)
    : SocketBase(handle, protocol)
{
    public SalState State { get; set; } = SalState.Init;

    public MigrationState Migration { get; private set; }

    public FlowId LocalFlow { get; } = localFlow;

    public FlowId PeerFlow { get; private set; }

    public Nonce LocalNonce { get; } = localNonce;

    public Nonce PeerNonce { get; private set; }

    /// <summary>The peer's flowID and nonce, as its SYN (server) or SYN-ACK (client) gave them.</summary>
    public void UsePeer(FlowId peerFlow, Nonce peerNonce)
    {
        PeerFlow = peerFlow;
        PeerNonce = peerNonce;
    }

    /// <summary>The serviceID the client asked for (both sides).</summary>
    public ServiceId Service { get; init; }

    public int Interface { get; private set; }

    public LinkAddress LocalAddress { get; private set; }

    public LinkAddress PeerAddress { get; private set; }

    /// <summary>Optional address a client gave to skip resolution.</summary>
    public LinkAddress AdvisoryAddress { get; init; }

    /// <summary>The control channel: verno/ackno, the single control slot and its timer, the RTT estimate.</summary>
    public ControlChannel Control { get; } = control;

    /// <summary>The FORWARD target the last first packet (SYN) left through; a retransmission tries another one of the same priority.</summary>
    public LinkAddress FirstHop { get; private set; }

    // Other timers.
    public TimeSpan? StateTimerAt { get; set; }

    /// <summary>When a pending request (SYN received, handshake ACK awaited) expires.</summary>
    public TimeSpan PendingExpiresAt { get; private set; }

    /// <summary>Retransmissions of our SYN-ACK so far.</summary>
    public int SynAckRetransmits { get; private set; }

    /// <summary>When our SYN-ACK is next retransmitted.</summary>
    public TimeSpan SynAckRetransmitAt { get; private set; }

    /// <summary>A SYN made this flow a pending request: it expires at <paramref name="expiresAt"/>, its SYN-ACK is repeated from <paramref name="firstRetransmitAt"/>.</summary>
    public void AwaitHandshakeAck(TimeSpan expiresAt, TimeSpan firstRetransmitAt)
    {
        PendingExpiresAt = expiresAt;
        SynAckRetransmitAt = firstRetransmitAt;
    }

    /// <summary>Our SYN-ACK went out again; the next retransmission is at <paramref name="next"/>.</summary>
    public void OnSynAckRetransmitted(TimeSpan next)
    {
        SynAckRetransmits++;
        SynAckRetransmitAt = next;
    }

    /// <summary>The flow's earliest deadline as last set in the engine's <see cref="FlowTimerTable"/> (kept by the table).</summary>
    public TimeSpan? ScheduledAt { get; set; }

    /// <summary>The earliest entry this flow has in the <see cref="FlowTimerTable"/>'s heap, or null (kept by the table).</summary>
    public TimeSpan? QueuedAt { get; set; }

    public ServalError Error { get; set; }

    /// <summary>
    /// The application closed the flow (released it). The SAL FIN does not depend on it: it follows the acknowledgement of
    /// our transport FIN, which a close or an earlier <c>CompleteWrites</c> queued.
    /// </summary>
    public bool CloseRequested { get; private set; }

    /// <summary>The application closed (released) the flow.</summary>
    public void RequestClose() => CloseRequested = true;

    /// <summary>Pending request's listener, or the listener an accepted child came from.</summary>
    public ListenerSocket? Listener { get; init; }

    /// <summary>Whether the application received this server-side flow from Accept.</summary>
    public bool Accepted { get; private set; }

    /// <summary>Identifier of this flow's SYN held by a DELAY rule, or 0.</summary>
    public long DelayedPacketId { get; set; }

    /// <summary>When our current migration started.</summary>
    public TimeSpan MigrationStartedAt { get; private set; }

    /// <summary>The verno of our outstanding RSYN.</summary>
    public uint MigrationVerno { get; private set; }

    /// <summary>The handshake ACK verified while the accept queue was full; the flow waits in the listener's deferred queue.</summary>
    public bool HandshakeDeferred { get; private set; }

    /// <summary>The transport part of that handshake ACK, replayed when the flow is promoted.</summary>
    public TcpRepr DeferredAck { get; private set; }

    /// <summary>The verified handshake ACK <paramref name="ack"/> waits for room in the accept queue.</summary>
    public void DeferHandshakeAck(TcpRepr ack)
    {
        HandshakeDeferred = true;
        DeferredAck = ack;
    }

    /// <summary>The flow left the listener's deferred queue (promoted, or found gone).</summary>
    public void EndHandshakeDeferral() => HandshakeDeferred = false;

    /// <summary>Whether this flow sits in its listener's accept queue.</summary>
    public bool InAcceptQueue { get; private set; }

    /// <summary>The handshake completed: the flow waits in its listener's accept queue.</summary>
    public void EnterAcceptQueue() => InAcceptQueue = true;

    /// <summary>The flow left the accept queue; <paramref name="accepted"/>: the application received it.</summary>
    public void LeaveAcceptQueue(bool accepted)
    {
        InAcceptQueue = false;
        Accepted |= accepted;
    }

    /// <summary>Something arrived from the peer after our handshake ACK (so the peer has the connection).</summary>
    public bool HeardSinceHandshake { get; private set; }

    /// <summary>A packet with the peer's nonce arrived.</summary>
    public void OnHeardFromPeer() => HeardSinceHandshake = true;

    /// <summary>The stream's retransmission timeouts when the flow last checked (client flows, see HeardSinceHandshake).</summary>
    public long SeenTimeouts { get; private set; }

    /// <summary>
    /// Whether the stream's retransmission timeouts (<paramref name="timeouts"/>) rose since the last call while nothing
    /// came from the peer since the handshake: the handshake ACK may have been lost and is to be repeated.
    /// </summary>
    public bool HandshakeAckMayBeLost(long timeouts)
    {
        if (HeardSinceHandshake || timeouts == SeenTimeouts)
        {
            return false;
        }

        SeenTimeouts = timeouts;
        return true;
    }

    /// <summary>Our SYN was refused once and resolved again (a connect is re-resolved at most once).</summary>
    public bool RefusalRetried { get; private set; }

    /// <summary>The SYN is resolved once more after a refusal.</summary>
    public void OnRefusalRetried() => RefusalRetried = true;

    /// <summary>The SOURCE extension of the SYN, echoed (with our address appended) in the SYN-ACK.</summary>
    public SalSourceRoute? SynSource { get; init; }

    public StreamConnection? Stream { get; set; }

    /// <summary>The flow's key exchange and packet protection (docs/security.md), or null for an ordinary flow.</summary>
    public FlowSecurity? Security { get; set; }

    private Queue<byte[]>? _datagrams;

    /// <summary>Received datagrams not yet read (created on the first one: a stream flow never needs it).</summary>
    public Queue<byte[]> Datagrams => _datagrams ??= new();

    /// <summary>Received datagrams waiting to be read.</summary>
    public int DatagramCount => _datagrams?.Count ?? 0;

    /// <summary>Takes the oldest received datagram, if any.</summary>
    public bool TryDequeueDatagram([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? datagram)
    {
        datagram = null;
        return _datagrams is { } q && q.TryDequeue(out datagram);
    }

    /// <summary>The peer closed its direction (SAL FIN received).</summary>
    public bool PeerClosed { get; private set; }

    /// <summary>The peer's SAL FIN arrived; false when it had already (a retransmitted FIN).</summary>
    public bool OnPeerFin()
    {
        if (PeerClosed)
        {
            return false;
        }

        PeerClosed = true;
        return true;
    }

    /// <summary>Migration target interface, and the address the peer's RSYN came from.</summary>
    public int MigrationInterface { get; private set; } = -1;

    public LinkAddress MigrationPeerAddress { get; private set; }

    /// <summary>
    /// Since when the flow has had no usable path (its interface down and no migration to an up one under way), or
    /// null. Cleared when a migration completes or its interface comes back; the flow fails with
    /// <see cref="ServalError.NetworkDown"/> once this is older than the user timeout.
    /// </summary>
    public TimeSpan? StrandedSince { get; private set; }

    /// <summary>Puts the flow on interface <paramref name="iface"/> with local address <paramref name="localAddress"/> (resolution, an accepted SYN, a completed migration).</summary>
    public void UsePath(int iface, LinkAddress localAddress)
    {
        Interface = iface;
        LocalAddress = localAddress;
    }

    /// <summary>The peer's address as the handshake learned it.</summary>
    public void UsePeerAddress(LinkAddress peer) => PeerAddress = peer;

    /// <summary>Remembers the FORWARD target the first packet left through.</summary>
    public void UseFirstHop(LinkAddress firstHop) => FirstHop = firstHop;

    /// <summary>The flow has no usable path since <paramref name="now"/> (its interface down, nowhere to migrate).</summary>
    public void MarkStranded(TimeSpan now) => StrandedSince = now;

    /// <summary>The flow has a path again.</summary>
    public void ClearStranded() => StrandedSince = null;

    /// <summary>
    /// Starts our migration to interface <paramref name="toInterface"/>: RSYN sent (or sent and received, when the peer
    /// moves too); returns the verno of the RSYN, taken from the control channel.
    /// </summary>
    public uint BeginMigration(int toInterface, TimeSpan now)
    {
        MigrationInterface = toInterface;
        Migration = Migration is MigrationState.RsynReceived or MigrationState.RsynSentReceived
            ? MigrationState.RsynSentReceived
            : MigrationState.RsynSent;
        MigrationStartedAt = now;
        MigrationVerno = Control.TakeVerno();
        return MigrationVerno;
    }

    /// <summary>
    /// Our RSYN was answered: the migration target is cleared (the caller moved the flow with <see cref="UsePath"/>).
    /// Returns true when the flow's migration is over, false when the peer is still moving (its RSYN pending).
    /// </summary>
    public bool FinishOwnMigration()
    {
        MigrationInterface = -1;
        if (Migration == MigrationState.RsynSentReceived)
        {
            Migration = MigrationState.RsynReceived;
            return false;
        }

        Migration = MigrationState.None;
        return true;
    }

    /// <summary>The peer migrates: its RSYN came from <paramref name="source"/>.</summary>
    public void OnPeerMigrating(LinkAddress source)
    {
        if (Migration is MigrationState.None)
        {
            Migration = MigrationState.RsynReceived;
        }
        else if (Migration == MigrationState.RsynSent)
        {
            Migration = MigrationState.RsynSentReceived;
        }

        MigrationPeerAddress = source;
    }

    /// <summary>
    /// The peer's migration is acknowledged: adopt its new address. Returns true when the flow's migration is over,
    /// false when our own RSYN is still outstanding.
    /// </summary>
    public bool FinishPeerMigration()
    {
        PeerAddress = MigrationPeerAddress;
        if (Migration == MigrationState.RsynSentReceived)
        {
            Migration = MigrationState.RsynSent;
            return false;
        }

        Migration = MigrationState.None;
        return true;
    }

    public long PacketsSent { get; set; }

    public long PacketsReceived { get; set; }

    public long BytesSent { get; set; }

    public long BytesReceived { get; set; }

    /// <summary>Whether the flow's transport may carry data (established, or closing with data still flowing).</summary>
    public bool IsSynchronized => State is SalState.Connected or SalState.FinWait1 or SalState.FinWait2
        or SalState.CloseWait or SalState.LastAck or SalState.Closing or SalState.TimeWait;

    // Path validation (NAT rebinding, docs/nat-rebinding.md): a new source address of the peer, challenged.
    private LinkAddress _pathCandidate;
    private ulong _pathChallenge;
    private TimeSpan _pathChallengeAt;

    /// <summary>Whether a challenge to <paramref name="candidate"/> is still outstanding (sent less than an RTO ago).</summary>
    public bool IsValidating(LinkAddress candidate, TimeSpan now) =>
        _pathChallenge != 0 && _pathCandidate == candidate && now < _pathChallengeAt + Control.Rto;

    /// <summary>A challenge <paramref name="challenge"/> (non-zero) was sent to <paramref name="candidate"/>.</summary>
    public void OnPathChallengeSent(LinkAddress candidate, ulong challenge, TimeSpan now)
    {
        _pathCandidate = candidate;
        _pathChallenge = challenge;
        _pathChallengeAt = now;
    }

    /// <summary>
    /// A response to <paramref name="challenge"/> (its nonce already checked) came from <paramref name="source"/>: when it
    /// answers the outstanding challenge from the candidate address, the peer's address becomes that one.
    /// </summary>
    public bool TryCompletePathValidation(ulong challenge, LinkAddress source)
    {
        if (_pathChallenge == 0 || challenge != _pathChallenge || source != _pathCandidate)
        {
            return false;
        }

        PeerAddress = source;
        _pathChallenge = 0;
        _pathCandidate = default;
        return true;
    }
}
