using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// A view over a TCP segment (RFC 9293 §3.1). <see cref="TryCreate"/> checks the fixed header and the data offset
/// once; afterwards no accessor can throw.
/// </summary>
public readonly ref struct TcpHeaderView
{
    /// <summary>Length of the fixed header in bytes.</summary>
    public const int MinLength = 20;

    private readonly Span<byte> _b;

    private TcpHeaderView(Span<byte> buffer) => _b = buffer;

    /// <summary>Wraps <paramref name="segment"/> (header + payload) after validating its lengths.</summary>
    public static bool TryCreate(Span<byte> segment, out TcpHeaderView view, out WireError error)
    {
        view = default;
        if (segment.Length < MinLength)
        {
            error = WireError.Truncated;
            return false;
        }

        var dataOffset = (segment[12] >> 4) * 4;
        if (dataOffset < MinLength || dataOffset > segment.Length)
        {
            error = WireError.BadDataOffset;
            return false;
        }

        view = new TcpHeaderView(segment);
        error = WireError.None;
        return true;
    }

    /// <summary>Source port (0 inside Serval).</summary>
    public ushort SourcePort { get => BinaryPrimitives.ReadUInt16BigEndian(_b); set => BinaryPrimitives.WriteUInt16BigEndian(_b, value); }

    /// <summary>Destination port (0 inside Serval).</summary>
    public ushort DestinationPort { get => BinaryPrimitives.ReadUInt16BigEndian(_b[2..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[2..], value); }

    /// <summary>Sequence number.</summary>
    public uint SequenceNumber { get => BinaryPrimitives.ReadUInt32BigEndian(_b[4..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[4..], value); }

    /// <summary>Acknowledgment number.</summary>
    public uint AckNumber { get => BinaryPrimitives.ReadUInt32BigEndian(_b[8..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[8..], value); }

    /// <summary>Header length in bytes (data offset × 4).</summary>
    public int HeaderLength => (_b[12] >> 4) * 4;

    /// <summary>Flags, including NS.</summary>
    public TcpFlags Flags => (TcpFlags)(((_b[12] & 1) << 8) | _b[13]);

    /// <summary>Receive window (unscaled).</summary>
    public ushort Window { get => BinaryPrimitives.ReadUInt16BigEndian(_b[14..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[14..], value); }

    /// <summary>Checksum field.</summary>
    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[16..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[16..], value); }

    /// <summary>Urgent pointer.</summary>
    public ushort UrgentPointer => BinaryPrimitives.ReadUInt16BigEndian(_b[18..]);

    /// <summary>The option bytes.</summary>
    public Span<byte> Options => _b[MinLength..HeaderLength];

    /// <summary>The payload after the header.</summary>
    public Span<byte> Payload => _b[HeaderLength..];

    /// <summary>The whole segment.</summary>
    public Span<byte> Segment => _b;

    /// <summary>Whether the checksum verifies against <paramref name="pseudoHeader"/>.</summary>
    public bool VerifyChecksum(in TransportPseudoHeader pseudoHeader) =>
        InternetChecksum.Fold(InternetChecksum.Add(pseudoHeader.Sum(6, _b.Length), _b)) == 0xFFFF;

    /// <summary>Computes and stores the checksum for <paramref name="pseudoHeader"/>.</summary>
    public void FillChecksum(in TransportPseudoHeader pseudoHeader)
    {
        Checksum = 0;
        Checksum = InternetChecksum.Finish(InternetChecksum.Add(pseudoHeader.Sum(6, _b.Length), _b));
    }
}
