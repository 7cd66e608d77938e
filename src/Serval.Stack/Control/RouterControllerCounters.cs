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

    internal RouterControllerCounters()
    {
    }

    /// <summary>In a fleet: writes (puts and deletes) handed to the registry.</summary>
    public long RegistryWrites => Volatile.Read(ref _registryWrites);

    /// <summary>In a fleet: registry entries that did not decode (ignored).</summary>
    public long RegistryMalformed => Volatile.Read(ref _registryMalformed);

    /// <summary>In a fleet: registrations added or changed from the registry.</summary>
    public long FleetApplied => Volatile.Read(ref _fleetApplied);

    internal void CountRegistryWrites() => Interlocked.Increment(ref _registryWrites);

    internal void CountRegistryMalformed() => Interlocked.Increment(ref _registryMalformed);

    internal void CountFleetApplied() => Interlocked.Increment(ref _fleetApplied);

    /// <summary>Datagrams read from the router's socket.</summary>
    public long MessagesReceived => Volatile.Read(ref _messagesReceived);

    /// <summary>Datagrams that did not parse, or acknowledgements sent to the router.</summary>
    public long Malformed => Volatile.Read(ref _malformed);

    /// <summary>With a key: requests without a MAC.</summary>
    public long Unauthenticated => Volatile.Read(ref _unauthenticated);

    /// <summary>With a key: requests whose MAC did not verify.</summary>
    public long BadMac => Volatile.Read(ref _badMac);

    /// <summary>With a key: authentic requests with an old epoch or a timestamp outside the replay window (answered Stale, not applied).</summary>
    public long Stale => Volatile.Read(ref _stale);

    /// <summary>With a key: authentic, current requests whose sequence number was already seen or is older than the window.</summary>
    public long Replayed => Volatile.Read(ref _replayed);

    /// <summary>Requests refused by policy or limits (prefix too short, table, per-sender or sender limit).</summary>
    public long Rejected => Volatile.Read(ref _rejected);

    /// <summary>Requests from an address no up interface can reach.</summary>
    public long NoInterface => Volatile.Read(ref _noInterface);

    /// <summary>New registrations (a FORWARD rule was set up).</summary>
    public long Registered => Volatile.Read(ref _registered);

    /// <summary>Registrations refreshed.</summary>
    public long Refreshed => Volatile.Read(ref _refreshed);

    /// <summary>Registrations removed by an Unregister.</summary>
    public long Unregistered => Volatile.Read(ref _unregistered);

    /// <summary>Registrations removed because their lease ran out.</summary>
    public long Expired => Volatile.Read(ref _expired);

    /// <summary>Senders whose address changed (their rules moved to the new address).</summary>
    public long Moved => Volatile.Read(ref _moved);

    /// <summary>Acknowledgements handed to the engine.</summary>
    public long AcksSent => Volatile.Read(ref _acksSent);

    /// <summary>Acknowledgements the engine refused to send.</summary>
    public long SendFailures => Volatile.Read(ref _sendFailures);

    /// <summary>Resolve requests answered (Ok or NotFound).</summary>
    public long ResolveRequests => Volatile.Read(ref _resolveRequests);

    /// <summary>Resolve requests answered NotFound.</summary>
    public long ResolveNotFound => Volatile.Read(ref _resolveNotFound);

    internal void CountResolveRequests() => Volatile.Write(ref _resolveRequests, _resolveRequests + 1);

    internal void CountResolveNotFound() => Volatile.Write(ref _resolveNotFound, _resolveNotFound + 1);

    internal void CountMessagesReceived() => Volatile.Write(ref _messagesReceived, _messagesReceived + 1);

    internal void CountMalformed() => Volatile.Write(ref _malformed, _malformed + 1);

    internal void CountUnauthenticated() => Volatile.Write(ref _unauthenticated, _unauthenticated + 1);

    internal void CountBadMac() => Volatile.Write(ref _badMac, _badMac + 1);

    internal void CountStale() => Volatile.Write(ref _stale, _stale + 1);

    internal void CountReplayed() => Volatile.Write(ref _replayed, _replayed + 1);

    internal void CountRejected() => Volatile.Write(ref _rejected, _rejected + 1);

    internal void CountNoInterface() => Volatile.Write(ref _noInterface, _noInterface + 1);

    internal void CountRegistered() => Volatile.Write(ref _registered, _registered + 1);

    internal void CountRefreshed() => Volatile.Write(ref _refreshed, _refreshed + 1);

    internal void CountUnregistered() => Volatile.Write(ref _unregistered, _unregistered + 1);

    internal void CountExpired() => Volatile.Write(ref _expired, _expired + 1);

    internal void CountMoved() => Volatile.Write(ref _moved, _moved + 1);

    internal void CountAcksSent() => Volatile.Write(ref _acksSent, _acksSent + 1);

    internal void CountSendFailures() => Volatile.Write(ref _sendFailures, _sendFailures + 1);
}
