namespace Serval.Stack.Streams;

/// <summary>
/// The transport's connection state (RFC 9293 §3.3.2). LISTEN does not exist here: the SAL owns listening and
/// creates a connection when a SYN arrives. TIME-WAIT is entered but never left by the transport; its duration is
/// the SAL's business.
/// </summary>
public enum StreamState
{
    /// <summary>Not opened yet, or finished (see <see cref="StreamConnection.Error"/> for why).</summary>
    Closed,

    /// <summary>Our SYN was created; waiting for the SYN-ACK.</summary>
    SynSent,

    /// <summary>The peer's SYN was accepted; waiting for the handshake ACK.</summary>
    SynReceived,

    /// <summary>Data flows both ways.</summary>
    Established,

    /// <summary>We completed our writes; our FIN is queued or unacknowledged.</summary>
    FinWait1,

    /// <summary>Our FIN was acknowledged; the peer may still send.</summary>
    FinWait2,

    /// <summary>Both sides sent a FIN; ours is not acknowledged yet (simultaneous close).</summary>
    Closing,

    /// <summary>Both FINs were exchanged and acknowledged, and we closed first.</summary>
    TimeWait,

    /// <summary>The peer finished sending; we may still write.</summary>
    CloseWait,

    /// <summary>The peer finished, we completed our writes; our FIN is queued or unacknowledged.</summary>
    LastAck,
}
