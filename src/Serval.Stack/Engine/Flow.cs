using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// One SAL flow: a connection's control channel (verno/ackno, nonces, the single-slot retransmission queue),
/// addressing, and its transport (a <see cref="StreamConnection"/> or a datagram queue).
/// </summary>
internal sealed class Flow(SocketHandle handle, TransportProtocol protocol, FlowId localFlow, Nonce localNonce, uint iss)
    : SocketBase(handle, protocol)
{
    public SalState State { get; set; } = SalState.Init;

    public MigrationState Migration { get; set; }

    public FlowId LocalFlow { get; } = localFlow;

    public FlowId PeerFlow { get; set; }

    public Nonce LocalNonce { get; } = localNonce;

    public Nonce PeerNonce { get; set; }

    /// <summary>The serviceID the client asked for (both sides).</summary>
    public ServiceId Service { get; set; }

    public int Interface { get; set; }

    public LinkAddress LocalAddress { get; set; }

    public LinkAddress PeerAddress { get; set; }

    /// <summary>Optional address a client gave to skip resolution.</summary>
    public LinkAddress AdvisoryAddress { get; set; }

    // Control sequence space (docs/protocol.md §5–6).
    public uint Iss { get; } = iss;

    public uint SndUna { get; set; } = iss;

    public uint SndNxt { get; set; } = iss;

    public uint RcvNxt { get; set; }

    // The single control slot.
    public bool ControlPending { get; set; }

    public SalControlFlags ControlFlags { get; set; }

    public uint ControlVerno { get; set; }

    public TimeSpan ControlSentAt { get; set; }

    public bool ControlRetransmitted { get; set; }

    public int Retransmits { get; set; }

    /// <summary>The FORWARD target the last first packet (SYN) left through; a retransmission tries another one of the same priority.</summary>
    public LinkAddress FirstHop { get; set; }

    public TimeSpan RetransmitAt { get; set; }

    // RFC 6298 estimator.
    public TimeSpan Srtt { get; set; }

    public TimeSpan RttVar { get; set; }

    public TimeSpan Rto { get; set; }

    public bool HasRttSample { get; set; }

    // Other timers.
    public TimeSpan? StateTimerAt { get; set; }

    public TimeSpan PendingExpiresAt { get; set; }

    public int SynAckRetransmits { get; set; }

    public TimeSpan SynAckRetransmitAt { get; set; }

    /// <summary>The time of the earliest timer this flow last registered (for the engine's timer heap).</summary>
    public TimeSpan? ScheduledAt { get; set; }

    /// <summary>
    /// The earliest deadline this flow has in the timer heap (null when none). A deadline that moves later does not add
    /// an entry: the queued one fires early and is re-queued at the real deadline, so the heap holds about one entry per
    /// flow instead of one per rescheduling.
    /// </summary>
    public TimeSpan? QueuedAt { get; set; }

    public ServalError Error { get; set; }

    /// <summary>
    /// The application closed the flow (released it). The SAL FIN does not depend on it: it follows the acknowledgement of
    /// our transport FIN, which a close or an earlier <c>CompleteWrites</c> queued.
    /// </summary>
    public bool CloseRequested { get; set; }

    /// <summary>Pending request's listener, or the listener an accepted child came from.</summary>
    public ListenerSocket? Listener { get; set; }

    /// <summary>Whether the application received this server-side flow from Accept.</summary>
    public bool Accepted { get; set; }

    /// <summary>Identifier of this flow's SYN held by a DELAY rule, or 0.</summary>
    public long DelayedPacketId { get; set; }

    /// <summary>A new source address the peer's packets came from, being validated (NAT rebinding).</summary>
    public LinkAddress PathCandidate { get; set; }

    /// <summary>The challenge sent to <see cref="PathCandidate"/>; 0 when none is outstanding.</summary>
    public ulong PathChallenge { get; set; }

    /// <summary>When the challenge was sent.</summary>
    public TimeSpan PathChallengeAt { get; set; }

    /// <summary>We owe the peer an RSYN|ACK for its migration, retransmitted until its final ACK arrives.</summary>
    public bool RsynAckOwed { get; set; }

    /// <summary>When the owed RSYN|ACK is next retransmitted.</summary>
    public TimeSpan RsynAckAt { get; set; }

    /// <summary>Retransmissions of the owed RSYN|ACK so far.</summary>
    public int RsynAckRetransmits { get; set; }

    /// <summary>When our current migration started.</summary>
    public TimeSpan MigrationStartedAt { get; set; }

    /// <summary>The verno of our outstanding RSYN.</summary>
    public uint MigrationVerno { get; set; }

    /// <summary>The handshake ACK verified while the accept queue was full; the flow waits in the listener's deferred queue.</summary>
    public bool HandshakeDeferred { get; set; }

    /// <summary>The transport part of that handshake ACK, replayed when the flow is promoted.</summary>
    public TcpRepr DeferredAck { get; set; }

    /// <summary>Something arrived from the peer after our handshake ACK (so the peer has the connection).</summary>
    public bool HeardSinceHandshake { get; set; }

    /// <summary>The stream's retransmission timeouts when the flow last checked (client flows, see HeardSinceHandshake).</summary>
    public long SeenTimeouts { get; set; }

    /// <summary>Our SYN was refused once and resolved again (a connect is re-resolved at most once).</summary>
    public bool RefusalRetried { get; set; }

    /// <summary>Whether this flow sits in its listener's accept queue.</summary>
    public bool InAcceptQueue { get; set; }

    /// <summary>The SOURCE extension of the SYN, echoed (with our address appended) in the SYN-ACK.</summary>
    public SalSourceRoute? SynSource { get; set; }

    public StreamConnection? Stream { get; set; }

    public Queue<byte[]> Datagrams { get; } = new();

    /// <summary>The peer closed its direction (SAL FIN received).</summary>
    public bool PeerClosed { get; set; }

    /// <summary>Migration target interface, and the address the peer's RSYN came from.</summary>
    public int MigrationInterface { get; set; } = -1;

    public LinkAddress MigrationPeerAddress { get; set; }

    /// <summary>
    /// Since when the flow has had no usable path (its interface down and no migration to an up one under way), or
    /// null. Cleared when a migration completes or its interface comes back; the flow fails with
    /// <see cref="ServalError.NetworkDown"/> once this is older than the user timeout.
    /// </summary>
    public TimeSpan? StrandedSince { get; set; }

    public long PacketsSent { get; set; }

    public long PacketsReceived { get; set; }

    public long BytesSent { get; set; }

    public long BytesReceived { get; set; }

    /// <summary>Whether the flow's transport may carry data (established, or closing with data still flowing).</summary>
    public bool IsSynchronized => State is SalState.Connected or SalState.FinWait1 or SalState.FinWait2
        or SalState.CloseWait or SalState.LastAck or SalState.Closing or SalState.TimeWait;
}
