using System.Net.Sockets;
using Serval.Stack;

namespace Serval;

/// <summary>
/// A Serval operation failed for a network or protocol reason. <see cref="Error"/> says why in Serval's terms and
/// <see cref="SocketErrorCode"/> gives the closest <see cref="SocketError"/>, so code written for sockets can handle it.
/// </summary>
public sealed class ServalException : IOException
{
    /// <summary>Creates an exception for <paramref name="error"/> with a default message.</summary>
    public ServalException(ServalError error)
        : this(error, DefaultMessage(error))
    {
    }

    /// <summary>Creates an exception for <paramref name="error"/> with <paramref name="message"/>.</summary>
    public ServalException(ServalError error, string message)
        : this(error, message, null)
    {
    }

    /// <summary>Creates an exception for <paramref name="error"/> with <paramref name="message"/> and an inner exception.</summary>
    public ServalException(ServalError error, string message, Exception? innerException)
        : base(message, innerException)
    {
        Error = error;
        SocketErrorCode = ToSocketError(error);
        HResult = (int)SocketErrorCode;
    }

    /// <summary>Why the operation failed.</summary>
    public ServalError Error { get; }

    /// <summary>The <see cref="SocketError"/> closest to <see cref="Error"/>.</summary>
    public SocketError SocketErrorCode { get; }

    /// <summary>Maps a <see cref="ServalError"/> onto the closest <see cref="SocketError"/>.</summary>
    public static SocketError ToSocketError(ServalError error) => error switch
    {
        ServalError.None => SocketError.Success,
        ServalError.ConnectionRefused => SocketError.ConnectionRefused,
        ServalError.ConnectionReset => SocketError.ConnectionReset,
        ServalError.TimedOut => SocketError.TimedOut,
        ServalError.NoRoute => SocketError.HostUnreachable,
        ServalError.Aborted => SocketError.ConnectionAborted,
        ServalError.AddressInUse => SocketError.AddressAlreadyInUse,
        ServalError.InvalidState => SocketError.NotConnected,
        ServalError.InvalidArgument => SocketError.InvalidArgument,
        ServalError.BadHandle => SocketError.NotSocket,
        ServalError.WouldBlock => SocketError.WouldBlock,
        ServalError.NetworkDown => SocketError.NetworkDown,
        ServalError.MigrationFailed => SocketError.NetworkUnreachable,
        ServalError.ServiceNotFound => SocketError.HostNotFound,
        ServalError.OwnershipProofFailed => SocketError.AccessDenied,
        ServalError.SecurityNotNegotiated => SocketError.ProtocolNotSupported,
        ServalError.AlreadyExists => SocketError.AddressAlreadyInUse,
        ServalError.NotFound => SocketError.NoData,
        _ => SocketError.SocketError,
    };

    private static string DefaultMessage(ServalError error) => error switch
    {
        ServalError.ConnectionRefused => "The service refused the connection.",
        ServalError.ConnectionReset => "The peer reset the connection.",
        ServalError.TimedOut => "The peer did not answer within the retransmission limit.",
        ServalError.NoRoute => "No service-table rule resolves the serviceID.",
        ServalError.Aborted => "The connection was aborted locally.",
        ServalError.AddressInUse => "The serviceID or prefix is already bound.",
        ServalError.InvalidState => "The socket is not in a state that allows the operation.",
        ServalError.InvalidArgument => "An argument is out of range.",
        ServalError.BadHandle => "The socket is closed.",
        ServalError.WouldBlock => "A queue is full; retry later.",
        ServalError.NetworkDown => "The interface or address the flow used went away.",
        ServalError.MigrationFailed => "The flow could not migrate to its new address.",
        ServalError.ServiceNotFound => "No service router or host on the way knew the service.",
        ServalError.OwnershipProofFailed => "The server did not prove it holds the key of the self-certifying serviceID.",
        ServalError.SecurityNotNegotiated => "The server did not accept the authenticated flow the connect required.",
        ServalError.AlreadyExists => "It exists already.",
        ServalError.NotFound => "No such object.",
        _ => $"Serval error {error}.",
    };
}
