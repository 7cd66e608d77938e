using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// The UDP header of Serval's datagram transport (RFC 768; docs/protocol.md §9): ports are always 0, the length covers
/// header and payload, and the checksum is optional (0 = not computed, as the reference sends in some packets).
/// </summary>
public readonly record struct UdpRepr
{
    /// <summary>UDP header length.</summary>
    public const int HeaderLength = 8;

    /// <summary>Whether the checksum is computed on emit (otherwise the field is 0).</summary>
    public bool HasChecksum { get; init; }

    /// <summary>Parses the 8-byte header at the start of <paramref name="datagram"/> and checks its length field.</summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, out UdpRepr repr, out int payloadLength, out WireError error)
    {
        repr = default;
        payloadLength = 0;
        if (datagram.Length < HeaderLength)
        {
            error = WireError.Truncated;
            return false;
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(datagram[4..]);
        if (length < HeaderLength || length > datagram.Length)
        {
            error = WireError.BadUdpLength;
            return false;
        }

        repr = new UdpRepr { HasChecksum = BinaryPrimitives.ReadUInt16BigEndian(datagram[6..]) != 0 };
        payloadLength = length - HeaderLength;
        error = WireError.None;
        return true;
    }

    /// <summary>Writes the header for a payload of <paramref name="payloadLength"/> bytes (checksum 0).</summary>
    public int Emit(Span<byte> buffer, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32BigEndian(buffer, 0);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[4..], checked((ushort)(HeaderLength + payloadLength)));
        BinaryPrimitives.WriteUInt16BigEndian(buffer[6..], 0);
        return HeaderLength;
    }

    /// <summary>
    /// Computes the checksum of the datagram at <paramref name="datagram"/> (header + payload, checksum field zero) and
    /// stores it; a computed 0 is sent as 0xFFFF (RFC 768).
    /// </summary>
    public static void FillChecksum(Span<byte> datagram, in TransportPseudoHeader pseudoHeader)
    {
        BinaryPrimitives.WriteUInt16BigEndian(datagram[6..], 0);
        var c = InternetChecksum.Finish(InternetChecksum.Add(pseudoHeader.Sum(17, datagram.Length), datagram));
        BinaryPrimitives.WriteUInt16BigEndian(datagram[6..], c == 0 ? (ushort)0xFFFF : c);
    }

    /// <summary>Whether the checksum verifies; a zero checksum field means "not computed" and verifies.</summary>
    public static bool VerifyChecksum(ReadOnlySpan<byte> datagram, in TransportPseudoHeader pseudoHeader)
    {
        if (datagram.Length < HeaderLength || BinaryPrimitives.ReadUInt16BigEndian(datagram[6..]) == 0)
        {
            return datagram.Length >= HeaderLength;
        }

        return InternetChecksum.Fold(InternetChecksum.Add(pseudoHeader.Sum(17, datagram.Length), datagram)) == 0xFFFF;
    }
}
