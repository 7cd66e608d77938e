namespace Serval.Stack.Streams;

/// <summary>
/// What the stream transport did with a segment that a blind attacker could have forged (RFC 5961 adapted to the
/// SAL): each dropped or ignored segment counts once, under the first check it failed; challenge ACKs count apart.
/// </summary>
internal enum TransportDefence
{
    /// <summary>A TCP RST (never honoured on a SAL flow: genuine resets are SAL RSTs carrying a nonce).</summary>
    SpoofTransportRst,

    /// <summary>A TCP SYN on a synchronized connection.</summary>
    SpoofSyn,

    /// <summary>A FIN that was not exactly in order (a gap before it, or beyond the data accepted).</summary>
    SpoofFin,

    /// <summary>A segment inside the window whose ACK field fails RFC 5961 §5.2 (or that carries no ACK).</summary>
    AckUnacceptable,

    /// <summary>A segment outside the receive window that is not a plausible old duplicate.</summary>
    DataOutOfWindow,

    /// <summary>A challenge ACK sent.</summary>
    ChallengeAckSent,

    /// <summary>A challenge ACK not sent because the per-connection rate limit was reached.</summary>
    ChallengeAckSuppressed,
}
