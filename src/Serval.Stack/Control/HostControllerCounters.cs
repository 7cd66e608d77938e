namespace Serval.Stack.ControlPlane;

/// <summary>Counters of a <see cref="HostController"/> (or of a router's upstream registration). Read from any thread.</summary>
public sealed class HostControllerCounters
{
    private long _messagesSent;
    private long _retransmissions;
    private long _acksReceived;
    private long _staleAcks;
    private long _rejectedAcks;
    private long _routerRestarts;
    private long _addressChanges;
    private long _malformed;
    private long _unauthenticated;
    private long _unexpectedAcks;
    private long _sendFailures;
    private long _registrationsDropped;
    private long _interfaceChanges;
    private long _queries;
    private long _queriesFailed;
    private long _failovers;

    internal HostControllerCounters()
    {
    }

    /// <summary>With <see cref="RouterSelection.One"/>: times the registrations moved to the next router because the current one stopped answering.</summary>
    public long Failovers => CrossThread.Read(ref _failovers);

    internal void CountFailovers() => CrossThread.Increment(ref _failovers);

    /// <summary>Register and Unregister messages handed to the engine.</summary>
    public long MessagesSent => CrossThread.Read(ref _messagesSent);

    /// <summary>Messages sent again because the previous one was not answered.</summary>
    public long Retransmissions => CrossThread.Read(ref _retransmissions);

    /// <summary>Authentic acknowledgements that matched an outstanding message.</summary>
    public long AcksReceived => CrossThread.Read(ref _acksReceived);

    /// <summary>Acknowledgements with status Stale (the router's epoch or clock was not known yet).</summary>
    public long StaleAcks => CrossThread.Read(ref _staleAcks);

    /// <summary>Acknowledgements with status Rejected.</summary>
    public long RejectedAcks => CrossThread.Read(ref _rejectedAcks);

    /// <summary>Times a router answered with a new epoch (every registration is then sent again at once).</summary>
    public long RouterRestarts => CrossThread.Read(ref _routerRestarts);

    /// <summary>Local address changes that triggered re-registration.</summary>
    public long AddressChanges => CrossThread.Read(ref _addressChanges);

    /// <summary>Datagrams on the control socket that did not parse or were not acknowledgements.</summary>
    public long Malformed => CrossThread.Read(ref _malformed);

    /// <summary>Acknowledgements without a valid MAC while a key is configured.</summary>
    public long Unauthenticated => CrossThread.Read(ref _unauthenticated);

    /// <summary>Authentic acknowledgements that matched no outstanding message (late, duplicated or replayed).</summary>
    public long UnexpectedAcks => CrossThread.Read(ref _unexpectedAcks);

    /// <summary>Sends the engine refused (no route to the router, interface down).</summary>
    public long SendFailures => CrossThread.Read(ref _sendFailures);

    /// <summary>Prefixes not tracked because the limit was reached.</summary>
    public long RegistrationsDropped => CrossThread.Read(ref _registrationsDropped);

    /// <summary>Times the interface used to reach a router changed (its interface went away, another of its family took over).</summary>
    public long InterfaceChanges => CrossThread.Read(ref _interfaceChanges);

    internal void CountInterfaceChanges() => CrossThread.Write(ref _interfaceChanges, _interfaceChanges + 1);

    /// <summary>Resolve exchanges started (<see cref="HostController.Resolve"/>).</summary>
    public long Queries => CrossThread.Read(ref _queries);

    /// <summary>Resolve exchanges that no router answered.</summary>
    public long QueriesFailed => CrossThread.Read(ref _queriesFailed);

    internal void CountQueries() => CrossThread.Write(ref _queries, _queries + 1);

    internal void CountQueriesFailed() => CrossThread.Write(ref _queriesFailed, _queriesFailed + 1);

    internal void CountMessagesSent() => CrossThread.Write(ref _messagesSent, _messagesSent + 1);

    internal void CountRetransmissions() => CrossThread.Write(ref _retransmissions, _retransmissions + 1);

    internal void CountAcksReceived() => CrossThread.Write(ref _acksReceived, _acksReceived + 1);

    internal void CountStaleAcks() => CrossThread.Write(ref _staleAcks, _staleAcks + 1);

    internal void CountRejectedAcks() => CrossThread.Write(ref _rejectedAcks, _rejectedAcks + 1);

    internal void CountRouterRestarts() => CrossThread.Write(ref _routerRestarts, _routerRestarts + 1);

    internal void CountAddressChanges() => CrossThread.Write(ref _addressChanges, _addressChanges + 1);

    internal void CountMalformed() => CrossThread.Write(ref _malformed, _malformed + 1);

    internal void CountUnauthenticated() => CrossThread.Write(ref _unauthenticated, _unauthenticated + 1);

    internal void CountUnexpectedAcks() => CrossThread.Write(ref _unexpectedAcks, _unexpectedAcks + 1);

    internal void CountSendFailures() => CrossThread.Write(ref _sendFailures, _sendFailures + 1);

    internal void CountRegistrationsDropped() => CrossThread.Write(ref _registrationsDropped, _registrationsDropped + 1);
}
