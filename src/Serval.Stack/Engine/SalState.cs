namespace Serval.Stack;

/// <summary>SAL connection states, as in the reference (docs/protocol.md §12; §5–6).</summary>
public enum SalState
{
    /// <summary>Created, not connected.</summary>
    Init,

    /// <summary>SYN sent, waiting for SYN-ACK (the reference's REQUEST).</summary>
    Request,

    /// <summary>SYN-ACK sent, waiting for the client's ACK (the reference's RESPOND / request sock).</summary>
    Respond,

    /// <summary>Established.</summary>
    Connected,

    /// <summary>Our FIN sent, not yet acknowledged.</summary>
    FinWait1,

    /// <summary>Our FIN acknowledged, waiting for the peer's FIN.</summary>
    FinWait2,

    /// <summary>Both sides closed; waiting for stray packets to die out.</summary>
    TimeWait,

    /// <summary>Finished.</summary>
    Closed,

    /// <summary>Peer closed; we may still send.</summary>
    CloseWait,

    /// <summary>Peer closed, then we sent our FIN.</summary>
    LastAck,

    /// <summary>Listening.</summary>
    Listen,

    /// <summary>Both sides sent FIN at the same time.</summary>
    Closing,
}
