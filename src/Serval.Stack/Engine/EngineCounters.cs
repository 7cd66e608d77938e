namespace Serval.Stack;

/// <summary>Engine-wide counters. Read from any thread (values are updated by the engine's thread only).</summary>
public sealed class EngineCounters
{
    private long _packetsReceived;
    private long _packetsSent;
    private long _bytesReceived;
    private long _bytesSent;
    private long _malformed;
    private long _badTransportChecksum;
    private long _unknownFlow;
    private long _ownBroadcasts;
    private long _resetsSent;
    private long _resetsIgnored;
    private long _badNonce;
    private long _oldVerno;
    private long _synDropped;
    private long _controlRetransmissions;
    private long _forwarded;
    private long _forwardLoops;
    private long _forwardTooBig;
    private long _forwardedInPlace;
    private long _forwardReemitted;
    private long _hopLimitExceeded;
    private long _noRoute;
    private long _delayed;
    private long _delayExpired;
    private long _delayReleased;
    private long _delayOverflow;
    private long _datagramsDropped;
    private long _eventsDropped;
    private long _migrationsStarted;
    private long _rsynsRelayed;
    private long _relaysResent;
    private long _migrationsCompleted;
    private long _migrationsFailed;
    private long _pathValidationFailures;
    private long _pathsValidated;
    private long _migrationTicksTotal;
    private long _migrationTicksMax;
    private long _flowFaults;
    private long _synCookiesSent;
    private long _synCookiesAccepted;
    private long _synCookiesRejected;
    private long _pendingEvicted;
    private long _synCookiesSuppressed;
    private long _refusalRetries;
    private long _timeWaitRecycled;
    private long _negativeAnswersSent;
    private long _negativeAnswersSuppressed;
    private long _userTimeouts;
    private long _flowsStranded;
    private long _strandedTimeouts;
    private long _unauthenticated;
    private long _replayed;
    private long _ownershipProofFailures;
    private long _securityFallbacks;
    private long _securedFlows;

    /// <summary>Packets of authenticated flows dropped before the transport: no AUTH extension, or a tag that does not verify.</summary>
    public long UnauthenticatedPackets => CrossThread.Read(ref _unauthenticated);

    /// <summary>Packets of authenticated flows dropped as replays (a packet number already received or too old).</summary>
    public long ReplayedPackets => CrossThread.Read(ref _replayed);

    /// <summary>Connects that failed because the server's ownership proof was missing or wrong.</summary>
    public long OwnershipProofFailures => CrossThread.Read(ref _ownershipProofFailures);

    /// <summary>Connects whose SYN retransmission went without the key-exchange offer (no answer to the offer).</summary>
    public long SecurityFallbacks => CrossThread.Read(ref _securityFallbacks);

    /// <summary>Flows whose key exchange completed (both sides count theirs).</summary>
    public long SecuredFlows => CrossThread.Read(ref _securedFlows);

    /// <summary>Packets handed to the engine.</summary>
    public long PacketsReceived => CrossThread.Read(ref _packetsReceived);

    /// <summary>Packets transmitted.</summary>
    public long PacketsSent => CrossThread.Read(ref _packetsSent);

    /// <summary>Bytes handed to the engine.</summary>
    public long BytesReceived => CrossThread.Read(ref _bytesReceived);

    /// <summary>Bytes transmitted.</summary>
    public long BytesSent => CrossThread.Read(ref _bytesSent);

    /// <summary>Packets dropped because they did not parse (bad lengths, bad SAL checksum, bad extensions).</summary>
    public long Malformed => CrossThread.Read(ref _malformed);

    /// <summary>Packets dropped because the transport checksum failed.</summary>
    public long BadTransportChecksum => CrossThread.Read(ref _badTransportChecksum);

    /// <summary>Packets for a flowID that no flow has.</summary>
    public long UnknownFlow => CrossThread.Read(ref _unknownFlow);

    /// <summary>RSTs sent.</summary>
    public long ResetsSent => CrossThread.Read(ref _resetsSent);

    /// <summary>Packets received at a link's broadcast address from one of this engine's own addresses (the kernel loops broadcasts back to the sender's other sockets), dropped.</summary>
    public long OwnBroadcasts => CrossThread.Read(ref _ownBroadcasts);

    /// <summary>RSTs ignored because their nonce matched neither side.</summary>
    public long ResetsIgnored => CrossThread.Read(ref _resetsIgnored);

    /// <summary>Control packets ignored because of a wrong nonce.</summary>
    public long BadNonce => CrossThread.Read(ref _badNonce);

    /// <summary>Control packets with an old verno (answered with a pure ACK and dropped).</summary>
    public long OldVerno => CrossThread.Read(ref _oldVerno);

    /// <summary>SYNs dropped because a pending-request or accept bound was reached.</summary>
    public long SynDropped => CrossThread.Read(ref _synDropped);

    /// <summary>Control packets (and SYN-ACKs) retransmitted.</summary>
    public long ControlRetransmissions => CrossThread.Read(ref _controlRetransmissions);

    /// <summary>Packets forwarded by service-router resolution.</summary>
    public long Forwarded => CrossThread.Read(ref _forwarded);

    /// <summary>Packets not forwarded because our address was already in their SOURCE extension, or it was full.</summary>
    public long ForwardLoops => CrossThread.Read(ref _forwardLoops);

    /// <summary>
    /// First packets not forwarded because, with this router's address added to their SOURCE extension, they would
    /// exceed the egress link's MTU (docs/engine.md, "Forwarding and the MTU").
    /// </summary>
    public long ForwardTooBig => CrossThread.Read(ref _forwardTooBig);

    /// <summary>
    /// Of <see cref="Forwarded"/>, the packets rewritten in the receive buffer (docs/engine.md, "Forwarding in place").
    /// </summary>
    public long ForwardedInPlace => CrossThread.Read(ref _forwardedInPlace);

    /// <summary>
    /// Of <see cref="Forwarded"/>, the packets received in a writable buffer that were emitted again instead of being
    /// rewritten in place, because their headers were not in the form this stack emits (PAD or ADDRESS extensions,
    /// another extension order, reserved bits set, other TCP option layouts).
    /// </summary>
    public long ForwardReemitted => CrossThread.Read(ref _forwardReemitted);

    /// <summary>
    /// First packets a service router did not forward because their IP TTL / hop limit was 1 or 0 (it would have
    /// reached 0; docs/protocol.md §8).
    /// </summary>
    public long HopLimitExceeded => CrossThread.Read(ref _hopLimitExceeded);

    /// <summary>First packets no rule resolved (or a DROP rule discarded).</summary>
    public long NoRoute => CrossThread.Read(ref _noRoute);

    /// <summary>Packets queued by DELAY rules.</summary>
    public long Delayed => CrossThread.Read(ref _delayed);

    /// <summary>Delayed packets dropped because no verdict came in time.</summary>
    public long DelayExpired => CrossThread.Read(ref _delayExpired);

    /// <summary>Delayed packets sent on: released by a resolver's verdict or by a rule that now resolves their service.</summary>
    public long DelayReleased => CrossThread.Read(ref _delayReleased);

    /// <summary>Packets a DELAY rule could not queue because the queue was full.</summary>
    public long DelayOverflow => CrossThread.Read(ref _delayOverflow);

    /// <summary>Datagrams dropped because a receive queue was full or nothing could take them.</summary>
    public long DatagramsDropped => CrossThread.Read(ref _datagramsDropped);

    /// <summary>Events discarded because the driver did not drain the event queue.</summary>
    public long EventsDropped => CrossThread.Read(ref _eventsDropped);

    /// <summary>Migrations this host started (RSYN sent).</summary>
    public long MigrationsStarted => CrossThread.Read(ref _migrationsStarted);

    /// <summary>
    /// RSYNs also sent through the service table towards the peer's service, for the case that both ends moved
    /// (docs/engine.md, "Both ends move"). A router counts the ones it forwards in <see cref="Forwarded"/>.
    /// </summary>
    public long RsynsRelayed => CrossThread.Read(ref _rsynsRelayed);

    /// <summary>
    /// Relayed RSYNs a service router forwarded again, to a registration that moved after it first forwarded them
    /// (docs/engine.md, "Both ends move"; <see cref="EngineOptions.RelayHold"/>).
    /// </summary>
    public long RelaysResent => CrossThread.Read(ref _relaysResent);

    /// <summary>Migrations this host started that completed (RSYN|ACK received).</summary>
    public long MigrationsCompleted => CrossThread.Read(ref _migrationsCompleted);

    /// <summary>Migrations that failed (retransmission limit).</summary>
    public long MigrationsFailed => CrossThread.Read(ref _migrationsFailed);

    /// <summary>Path validations that failed or carried a wrong nonce (NAT rebinding).</summary>
    public long PathValidationFailures => CrossThread.Read(ref _pathValidationFailures);

    /// <summary>New paths validated and adopted (NAT rebinding).</summary>
    public long PathsValidated => CrossThread.Read(ref _pathsValidated);

    /// <summary>Total time from RSYN to completion over all completed migrations.</summary>
    public TimeSpan MigrationTimeTotal => TimeSpan.FromTicks(CrossThread.Read(ref _migrationTicksTotal));

    /// <summary>Longest time from RSYN to completion.</summary>
    public TimeSpan MigrationTimeMax => TimeSpan.FromTicks(CrossThread.Read(ref _migrationTicksMax));

    /// <summary>Unexpected exceptions while processing one flow (the flow was reset, the host went on).</summary>
    public long FlowFaults => CrossThread.Read(ref _flowFaults);

    /// <summary>SYN-ACKs sent statelessly (SYN cookies) because a listener's pending-request table was full.</summary>
    public long SynCookiesSent => CrossThread.Read(ref _synCookiesSent);

    /// <summary>Handshake ACKs that carried a valid SYN cookie and created a connection.</summary>
    public long SynCookiesAccepted => CrossThread.Read(ref _synCookiesAccepted);

    /// <summary>Handshake ACKs for no pending request whose SYN cookie did not verify (dropped).</summary>
    public long SynCookiesRejected => CrossThread.Read(ref _synCookiesRejected);

    /// <summary>SYNs not answered with a cookie because their source used up its budget.</summary>
    public long SynCookiesSuppressed => CrossThread.Read(ref _synCookiesSuppressed);

    /// <summary>Connects refused by the host the service table picked and resolved once more.</summary>
    public long RefusalRetries => CrossThread.Read(ref _refusalRetries);

    /// <summary>Pending requests evicted to make room for new SYNs.</summary>
    public long PendingEvicted => CrossThread.Read(ref _pendingEvicted);

    /// <summary>TIME-WAIT flows ended early because the TIME-WAIT cap was reached (oldest first).</summary>
    public long TimeWaitRecycled => CrossThread.Read(ref _timeWaitRecycled);

    /// <summary>Negative answers (service not found, connection refused) sent to SYNs no rule or listener took.</summary>
    public long NegativeAnswersSent => CrossThread.Read(ref _negativeAnswersSent);

    /// <summary>Negative answers not sent because of the rate limit.</summary>
    public long NegativeAnswersSuppressed => CrossThread.Read(ref _negativeAnswersSuppressed);

    /// <summary>Connections failed because sent data stayed unacknowledged for the user timeout.</summary>
    public long UserTimeouts => CrossThread.Read(ref _userTimeouts);

    /// <summary>Times a flow was left without a usable path (its interface gone, no other of its family up) and began to wait for one.</summary>
    public long FlowsStranded => CrossThread.Read(ref _flowsStranded);

    /// <summary>Flows failed with <see cref="ServalError.NetworkDown"/> because no usable path came back within their user timeout.</summary>
    public long StrandedTimeouts => CrossThread.Read(ref _strandedTimeouts);

    internal void FlowFault() => _flowFaults++;

    internal void SynCookieSent() => _synCookiesSent++;

    internal void SynCookieAccepted() => _synCookiesAccepted++;

    internal void SynCookieRejected() => _synCookiesRejected++;

    internal void SynCookieSuppressed() => _synCookiesSuppressed++;

    internal void RefusalRetry() => _refusalRetries++;

    internal void PendingEvictedRequest() => _pendingEvicted++;

    internal void TimeWaitRecycledFlow() => _timeWaitRecycled++;

    internal void NegativeAnswerSent() => _negativeAnswersSent++;

    internal void NegativeAnswerSuppressed() => _negativeAnswersSuppressed++;

    internal void UserTimeout() => _userTimeouts++;

    internal void FlowStranded() => _flowsStranded++;

    internal void StrandedFailure() => _strandedTimeouts++;

    internal void MigrationStarted() => _migrationsStarted++;

    internal void RsynRelayed() => _rsynsRelayed++;

    internal void RelayResent() => _relaysResent++;

    internal void MigrationCompleted(TimeSpan took)
    {
        _migrationsCompleted++;
        _migrationTicksTotal += took.Ticks;
        if (took.Ticks > _migrationTicksMax)
        {
            _migrationTicksMax = took.Ticks;
        }
    }

    internal void MigrationFailed() => _migrationsFailed++;

    internal void PathValidationFailed() => _pathValidationFailures++;

    internal void PathValidated() => _pathsValidated++;

    internal void Received(int bytes)
    {
        _packetsReceived++;
        _bytesReceived += bytes;
    }

    internal void Sent(int bytes)
    {
        _packetsSent++;
        _bytesSent += bytes;
    }

    internal void MalformedPacket() => _malformed++;

    internal void BadTransportChecksumPacket() => _badTransportChecksum++;

    internal void UnknownFlowPacket() => _unknownFlow++;

    internal void OwnBroadcastPacket() => _ownBroadcasts++;

    internal void ResetSent() => _resetsSent++;

    internal void ResetIgnored() => _resetsIgnored++;

    internal void BadNoncePacket() => _badNonce++;

    internal void UnauthenticatedPacket() => _unauthenticated++;

    internal void ReplayedPacket() => _replayed++;

    internal void OwnershipProofFailure() => _ownershipProofFailures++;

    internal void SecurityFallback() => _securityFallbacks++;

    internal void SecuredFlow() => _securedFlows++;

    internal void OldVernoPacket() => _oldVerno++;

    internal void SynDroppedPacket() => _synDropped++;

    internal void ControlRetransmission() => _controlRetransmissions++;

    internal void ForwardedPacket() => _forwarded++;

    internal void ForwardLoop() => _forwardLoops++;

    internal void ForwardTooBigPacket() => _forwardTooBig++;

    internal void ForwardedInPlacePacket() => _forwardedInPlace++;

    internal void ForwardReemittedPacket() => _forwardReemitted++;
    internal void HopLimitExceededPacket() => _hopLimitExceeded++;

    internal void NoRoutePacket() => _noRoute++;

    internal void DelayedPacket() => _delayed++;

    internal void DelayExpiredPacket() => _delayExpired++;

    internal void DelayReleasedPacket() => _delayReleased++;

    internal void DelayOverflowPacket() => _delayOverflow++;

    internal void DatagramDropped() => _datagramsDropped++;

    internal void EventDropped() => _eventsDropped++;

    // ----------------------------------------------------------------------------------------------------------
    // Stream transport defences against blind in-window attacks (RFC 5961 adapted to the SAL; docs/stream-transport.md)

    private long _spoofTransportRst;
    private long _spoofSyn;
    private long _spoofFin;
    private long _ackUnacceptable;
    private long _dataOutOfWindow;
    private long _challengeAcksSent;
    private long _challengeAcksSuppressed;

    /// <summary>TCP RSTs ignored on stream flows (a reset needs the SAL's nonce).</summary>
    public long SpoofTransportRst => CrossThread.Read(ref _spoofTransportRst);

    /// <summary>TCP SYNs received on synchronized stream connections (RFC 5961 §4).</summary>
    public long SpoofSyn => CrossThread.Read(ref _spoofSyn);

    /// <summary>TCP FIN flags ignored because they were not exactly in order.</summary>
    public long SpoofFin => CrossThread.Read(ref _spoofFin);

    /// <summary>In-window TCP segments dropped because their acknowledgement was unacceptable (RFC 5961 §5.2) or absent.</summary>
    public long AckUnacceptable => CrossThread.Read(ref _ackUnacceptable);

    /// <summary>TCP segments outside the receive window that were not plausible old duplicates.</summary>
    public long DataOutOfWindow => CrossThread.Read(ref _dataOutOfWindow);

    /// <summary>Challenge ACKs sent by stream connections (RFC 5961).</summary>
    public long ChallengeAcksSent => CrossThread.Read(ref _challengeAcksSent);

    /// <summary>Challenge ACKs withheld by the per-connection rate limit (RFC 5961 §7).</summary>
    public long ChallengeAcksSuppressed => CrossThread.Read(ref _challengeAcksSuppressed);

    internal void TransportDefence(Streams.TransportDefence kind)
    {
        switch (kind)
        {
            case Streams.TransportDefence.SpoofTransportRst:
                _spoofTransportRst++;
                break;
            case Streams.TransportDefence.SpoofSyn:
                _spoofSyn++;
                break;
            case Streams.TransportDefence.SpoofFin:
                _spoofFin++;
                break;
            case Streams.TransportDefence.AckUnacceptable:
                _ackUnacceptable++;
                break;
            case Streams.TransportDefence.DataOutOfWindow:
                _dataOutOfWindow++;
                break;
            case Streams.TransportDefence.ChallengeAckSent:
                _challengeAcksSent++;
                break;
            case Streams.TransportDefence.ChallengeAckSuppressed:
                _challengeAcksSuppressed++;
                break;
        }
    }
}
