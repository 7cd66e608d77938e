namespace Serval.Stack.ControlPlane;

/// <summary>Counters of a <see cref="RouterController"/>. Read from any thread.</summary>
public sealed class RouterControllerCounters
{
    private long _messagesReceived;
    private long _malformed;
    private long _unauthenticated;
    private long _badMac;
    private long _stale;
    private long _replayed;
    private long _rejected;
    private long _noInterface;
    private long _registered;
    private long _refreshed;
    private long _unregistered;
    private long _expired;
    private long _moved;
    private long _acksSent;
    private long _sendFailures;
    private long _resolveRequests;
    private long _resolveNotFound;
    private long _registryWrites;
    private long _registryMalformed;
    private long _fleetApplied;
    private long _unsignedRegistrations;
    private long _badSignatures;
    private long _foreignKeys;
    private long _refusedMoves;
    private long _signedAccepted;

    internal RouterControllerCounters()
    {
    }

    /// <summary>In a fleet: writes (puts and deletes) handed to the registry.</summary>
    public long RegistryWrites => CrossThread.Read(ref _registryWrites);

    /// <summary>In a fleet: registry entries that did not decode (ignored).</summary>
    public long RegistryMalformed => CrossThread.Read(ref _registryMalformed);

    /// <summary>In a fleet: registrations added or changed from the registry.</summary>
    public long FleetApplied => CrossThread.Read(ref _fleetApplied);

    internal void CountRegistryWrites() => CrossThread.Increment(ref _registryWrites);

    internal void CountRegistryMalformed() => CrossThread.Increment(ref _registryMalformed);

    internal void CountFleetApplied() => CrossThread.Increment(ref _fleetApplied);

    /// <summary>Datagrams read from the router's socket.</summary>
    public long MessagesReceived => CrossThread.Read(ref _messagesReceived);

    /// <summary>Datagrams that did not parse, or acknowledgements sent to the router.</summary>
    public long Malformed => CrossThread.Read(ref _malformed);

    /// <summary>With a key: requests without a MAC.</summary>
    public long Unauthenticated => CrossThread.Read(ref _unauthenticated);

    /// <summary>With a key: requests whose MAC did not verify.</summary>
    public long BadMac => CrossThread.Read(ref _badMac);

    /// <summary>With a key, and for signed requests: authentic requests with an old epoch or a timestamp outside the replay window (answered Stale, not applied).</summary>
    public long Stale => CrossThread.Read(ref _stale);

    /// <summary>With a key, and for signed requests: authentic, current requests whose sequence number was already seen or is older than the window.</summary>
    public long Replayed => CrossThread.Read(ref _replayed);

    /// <summary>Requests refused by policy or limits (prefix too short, table, per-sender or sender limit).</summary>
    public long Rejected => CrossThread.Read(ref _rejected);

    /// <summary>Requests from an address no up interface can reach.</summary>
    public long NoInterface => CrossThread.Read(ref _noInterface);

    /// <summary>New registrations (a FORWARD rule was set up).</summary>
    public long Registered => CrossThread.Read(ref _registered);

    /// <summary>Registrations refreshed.</summary>
    public long Refreshed => CrossThread.Read(ref _refreshed);

    /// <summary>Registrations removed by an Unregister.</summary>
    public long Unregistered => CrossThread.Read(ref _unregistered);

    /// <summary>Registrations removed because their lease ran out.</summary>
    public long Expired => CrossThread.Read(ref _expired);

    /// <summary>Senders whose address changed (their rules moved to the new address).</summary>
    public long Moved => CrossThread.Read(ref _moved);

    /// <summary>Acknowledgements handed to the engine.</summary>
    public long AcksSent => CrossThread.Read(ref _acksSent);

    /// <summary>Acknowledgements the engine refused to send.</summary>
    public long SendFailures => CrossThread.Read(ref _sendFailures);

    /// <summary>Resolve requests answered (Ok or NotFound).</summary>
    public long ResolveRequests => CrossThread.Read(ref _resolveRequests);

    /// <summary>Resolve requests answered NotFound.</summary>
    public long ResolveNotFound => CrossThread.Read(ref _resolveNotFound);

    internal void CountResolveRequests() => CrossThread.Write(ref _resolveRequests, _resolveRequests + 1);

    internal void CountResolveNotFound() => CrossThread.Write(ref _resolveNotFound, _resolveNotFound + 1);

    internal void CountMessagesReceived() => CrossThread.Write(ref _messagesReceived, _messagesReceived + 1);

    internal void CountMalformed() => CrossThread.Write(ref _malformed, _malformed + 1);

    internal void CountUnauthenticated() => CrossThread.Write(ref _unauthenticated, _unauthenticated + 1);

    internal void CountBadMac() => CrossThread.Write(ref _badMac, _badMac + 1);

    internal void CountStale() => CrossThread.Write(ref _stale, _stale + 1);

    internal void CountReplayed() => CrossThread.Write(ref _replayed, _replayed + 1);

    internal void CountRejected() => CrossThread.Write(ref _rejected, _rejected + 1);

    internal void CountNoInterface() => CrossThread.Write(ref _noInterface, _noInterface + 1);

    internal void CountRegistered() => CrossThread.Write(ref _registered, _registered + 1);

    internal void CountRefreshed() => CrossThread.Write(ref _refreshed, _refreshed + 1);

    internal void CountUnregistered() => CrossThread.Write(ref _unregistered, _unregistered + 1);

    internal void CountExpired() => CrossThread.Write(ref _expired, _expired + 1);

    internal void CountMoved() => CrossThread.Write(ref _moved, _moved + 1);

    internal void CountAcksSent() => CrossThread.Write(ref _acksSent, _acksSent + 1);

    /// <summary>
    /// Registers and Unregisters without a signature for a prefix that needs one (docs/control-protocol.md §5.1: within
    /// or containing <see cref="RouterControllerOptions.SelfCertifyingPrefixes"/>, or a serviceID registered here with
    /// a signature); ignored.
    /// </summary>
    public long UnsignedRegistrations => CrossThread.Read(ref _unsignedRegistrations);

    /// <summary>Signed requests whose key makes their serviceID but whose signature does not verify (forged or altered); ignored.</summary>
    public long BadSignatures => CrossThread.Read(ref _badSignatures);

    /// <summary>Signed requests whose key, with the prefix length given, does not make their serviceID (the key of another serviceID); ignored.</summary>
    public long ForeignKeys => CrossThread.Read(ref _foreignKeys);

    /// <summary>Requests from a new address (or control socket) of a sender holding signed registrations that were not signed for one of them; ignored, nothing moved.</summary>
    public long RefusedMoves => CrossThread.Read(ref _refusedMoves);

    /// <summary>Signed requests verified, current and applied.</summary>
    public long SignedAccepted => CrossThread.Read(ref _signedAccepted);

    internal void CountUnsignedRegistrations() => CrossThread.Write(ref _unsignedRegistrations, _unsignedRegistrations + 1);

    internal void CountBadSignatures() => CrossThread.Write(ref _badSignatures, _badSignatures + 1);

    internal void CountForeignKeys() => CrossThread.Write(ref _foreignKeys, _foreignKeys + 1);

    internal void CountRefusedMoves() => CrossThread.Write(ref _refusedMoves, _refusedMoves + 1);

    internal void CountSignedAccepted() => CrossThread.Write(ref _signedAccepted, _signedAccepted + 1);

    internal void CountSendFailures() => CrossThread.Write(ref _sendFailures, _sendFailures + 1);
}
