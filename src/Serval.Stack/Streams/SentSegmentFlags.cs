namespace Serval.Stack.Streams;

/// <summary>State of one transmitted segment in the retransmission queue.</summary>
[Flags]
internal enum SentSegmentFlags : byte
{
    /// <summary>In flight, nothing known.</summary>
    None = 0,

    /// <summary>The peer reported it in a SACK block.</summary>
    Sacked = 1,

    /// <summary>Deemed lost (RACK, duplicate ACKs or a timeout); due for retransmission.</summary>
    Lost = 2,

    /// <summary>Retransmitted since it was last marked lost (so it is in flight again).</summary>
    Retransmitted = 4,

    /// <summary>Retransmitted at least once (Karn's rule: no RTT sample from it).</summary>
    EverRetransmitted = 8,

    /// <summary>Carries our FIN (its last sequence number).</summary>
    Fin = 16,
}
