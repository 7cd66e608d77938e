namespace Serval.Stack.Streams;

/// <summary>One transmitted segment awaiting acknowledgement: its sequence range and transmission record.</summary>
internal struct SentSegment
{
    /// <summary>Position (sequence offset from the ISS) of its first octet.</summary>
    public long Start;

    /// <summary>Sequence length: payload bytes plus one when it carries the FIN.</summary>
    public int Length;

    /// <summary>When it was last (re)transmitted.</summary>
    public TimeSpan SentAt;

    /// <summary>State flags.</summary>
    public SentSegmentFlags Flags;

    /// <summary>Position following its last octet.</summary>
    public readonly long End => Start + Length;

    /// <summary>Payload bytes (the FIN excluded).</summary>
    public readonly int DataLength => Length - ((Flags & SentSegmentFlags.Fin) != 0 ? 1 : 0);

    /// <summary>Whether all of <paramref name="flag"/> is set.</summary>
    public readonly bool Has(SentSegmentFlags flag) => (Flags & flag) == flag;
}
