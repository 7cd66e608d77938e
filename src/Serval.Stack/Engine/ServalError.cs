namespace Serval;

/// <summary>Why a socket operation failed or a connection ended. Maps onto <see cref="System.Net.Sockets.SocketError"/>.</summary>
public enum ServalError
{
    /// <summary>No error.</summary>
    None = 0,

    /// <summary>The service refused the connection (RST in reply to the SYN).</summary>
    ConnectionRefused,

    /// <summary>The peer reset the connection.</summary>
    ConnectionReset,

    /// <summary>No answer within the retransmission limit.</summary>
    TimedOut,

    /// <summary>No service-table rule resolves the serviceID, or a DROP rule did.</summary>
    NoRoute,

    /// <summary>The connection was aborted locally.</summary>
    Aborted,

    /// <summary>The serviceID or prefix is already bound by a socket of this protocol.</summary>
    AddressInUse,

    /// <summary>The socket is not in a state that allows the operation.</summary>
    InvalidState,

    /// <summary>An argument is out of range (empty or oversized datagram, bad prefix).</summary>
    InvalidArgument,

    /// <summary>The socket handle is unknown or already closed.</summary>
    BadHandle,

    /// <summary>The operation would exceed a bound (queue full); retry later.</summary>
    WouldBlock,

    /// <summary>The local interface or address the flow used went away.</summary>
    NetworkDown,

    /// <summary>A migration could not be completed.</summary>
    MigrationFailed,

    /// <summary>No node on the way to the service knew it (a service router or host answered the SYN negatively).</summary>
    ServiceNotFound,

    /// <summary>
    /// The server did not prove it holds the key of the self-certifying serviceID asked for: no proof, a proof by another
    /// key, or a signature that does not verify (docs/security.md).
    /// </summary>
    OwnershipProofFailed,

    /// <summary>The connect required an authenticated flow and the server answered without accepting the offer.</summary>
    SecurityNotNegotiated,

    /// <summary>The object to add exists already (a service-table rule with the same prefix and target).</summary>
    AlreadyExists,

    /// <summary>The object named does not exist (a service-table rule, a flow, a registration).</summary>
    NotFound,
}
