using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>An IPv6 fixed header (RFC 8200 §3) as a value, for captures and raw IPv6 links. Extension headers are not parsed.</summary>
public readonly record struct Ipv6Repr
{
    /// <summary>Length of the fixed header.</summary>
    public const int HeaderLength = 40;

    /// <summary>Source address.</summary>
    public LinkAddress Source { get; init; }

    /// <summary>Destination address.</summary>
    public LinkAddress Destination { get; init; }

    /// <summary>Next header (144 for Serval).</summary>
    public byte NextHeader { get; init; }

    /// <summary>Hop limit.</summary>
    public byte HopLimit { get; init; }

    /// <summary>Traffic class.</summary>
    public byte TrafficClass { get; init; }

    /// <summary>Flow label (20 bits).</summary>
    public uint FlowLabel { get; init; }

    /// <summary>Parses the fixed header; the payload is bounded by the payload-length field.</summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out Ipv6Repr repr, out int payloadLength, out WireError error)
    {
        repr = default;
        payloadLength = 0;
        if (packet.Length < HeaderLength)
        {
            error = WireError.Truncated;
            return false;
        }

        if (packet[0] >> 4 != 6)
        {
            error = WireError.BadIPHeader;
            return false;
        }

        var len = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        if (HeaderLength + len > packet.Length)
        {
            error = WireError.Truncated;
            return false;
        }

        var first = BinaryPrimitives.ReadUInt32BigEndian(packet);
        repr = new Ipv6Repr
        {
            TrafficClass = (byte)(first >> 20),
            FlowLabel = first & 0xFFFFF,
            NextHeader = packet[6],
            HopLimit = packet[7],
            Source = LinkAddress.FromBytes(packet.Slice(8, 16)),
            Destination = LinkAddress.FromBytes(packet.Slice(24, 16)),
        };
        payloadLength = len;
        error = WireError.None;
        return true;
    }

    /// <summary>Writes the 40-byte header for <paramref name="payloadLength"/> bytes of payload.</summary>
    public int Emit(Span<byte> buffer, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32BigEndian(buffer, (6u << 28) | ((uint)TrafficClass << 20) | (FlowLabel & 0xFFFFF));
        BinaryPrimitives.WriteUInt16BigEndian(buffer[4..], checked((ushort)payloadLength));
        buffer[6] = NextHeader;
        buffer[7] = HopLimit;
        Source.WriteAddress(buffer[8..]);
        Destination.WriteAddress(buffer[24..]);
        return HeaderLength;
    }
}
