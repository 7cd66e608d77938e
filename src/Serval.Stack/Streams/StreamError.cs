namespace Serval.Stack.Streams;

/// <summary>Why a stream ended abnormally; <see cref="None"/> while it is healthy or after a graceful close.</summary>
public enum StreamError
{
    /// <summary>No error.</summary>
    None,

    /// <summary>The peer answered our SYN with a reset.</summary>
    Refused,

    /// <summary>The peer reset an open connection.</summary>
    Reset,

    /// <summary>Retransmissions, zero-window probes or keepalive probes went unanswered too many times.</summary>
    TimedOut,

    /// <summary>We aborted the connection (<see cref="StreamConnection.Abort"/>).</summary>
    Aborted,
}
