using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// An IPv4 header (RFC 791) as a value, for raw IP links and captures. Options are skipped on parse and never
/// emitted; fragments are reported so callers can drop them.
/// </summary>
public readonly record struct Ipv4Repr
{
    /// <summary>Length of an IPv4 header without options.</summary>
    public const int MinHeaderLength = 20;

    /// <summary>Source address.</summary>
    public LinkAddress Source { get; init; }

    /// <summary>Destination address.</summary>
    public LinkAddress Destination { get; init; }

    /// <summary>Protocol of the payload (144 for Serval).</summary>
    public byte Protocol { get; init; }

    /// <summary>Time to live.</summary>
    public byte Ttl { get; init; }

    /// <summary>Type of service / DSCP+ECN byte.</summary>
    public byte TypeOfService { get; init; }

    /// <summary>Identification field.</summary>
    public ushort Identification { get; init; }

    /// <summary>Don't-fragment flag.</summary>
    public bool DontFragment { get; init; }

    /// <summary>More-fragments flag.</summary>
    public bool MoreFragments { get; init; }

    /// <summary>Fragment offset in 8-byte units.</summary>
    public ushort FragmentOffset { get; init; }

    /// <summary>Whether the packet is a fragment.</summary>
    public bool IsFragment => MoreFragments || FragmentOffset != 0;

    /// <summary>
    /// Parses and checksum-verifies an IPv4 header; the payload is <c>packet[headerLength..(headerLength+payloadLength)]</c>
    /// (bounded by the total-length field, so link padding is excluded).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out Ipv4Repr repr, out int headerLength, out int payloadLength, out WireError error)
    {
        repr = default;
        headerLength = 0;
        payloadLength = 0;
        if (packet.Length < MinHeaderLength)
        {
            error = WireError.Truncated;
            return false;
        }

        var ihl = (packet[0] & 0xF) * 4;
        if (packet[0] >> 4 != 4 || ihl < MinHeaderLength || ihl > packet.Length)
        {
            error = WireError.BadIPHeader;
            return false;
        }

        var total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
        if (total < ihl || total > packet.Length)
        {
            error = WireError.Truncated;
            return false;
        }

        if (!InternetChecksum.Verify(packet[..ihl]))
        {
            error = WireError.BadIPChecksum;
            return false;
        }

        var frag = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]);
        repr = new Ipv4Repr
        {
            TypeOfService = packet[1],
            Identification = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]),
            DontFragment = (frag & 0x4000) != 0,
            MoreFragments = (frag & 0x2000) != 0,
            FragmentOffset = (ushort)(frag & 0x1FFF),
            Ttl = packet[8],
            Protocol = packet[9],
            Source = LinkAddress.FromBytes(packet.Slice(12, 4)),
            Destination = LinkAddress.FromBytes(packet.Slice(16, 4)),
        };
        headerLength = ihl;
        payloadLength = total - ihl;
        error = WireError.None;
        return true;
    }

    /// <summary>Writes a 20-byte header for <paramref name="payloadLength"/> bytes of payload, checksum included.</summary>
    public int Emit(Span<byte> buffer, int payloadLength)
    {
        var b = buffer[..MinHeaderLength];
        b[0] = 0x45;
        b[1] = TypeOfService;
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], checked((ushort)(MinHeaderLength + payloadLength)));
        BinaryPrimitives.WriteUInt16BigEndian(b[4..], Identification);
        BinaryPrimitives.WriteUInt16BigEndian(b[6..], (ushort)((DontFragment ? 0x4000 : 0) | (MoreFragments ? 0x2000 : 0) | (FragmentOffset & 0x1FFF)));
        b[8] = Ttl;
        b[9] = Protocol;
        b[10] = 0;
        b[11] = 0;
        Source.WriteAddress(b[12..]);
        Destination.WriteAddress(b[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(b[10..], InternetChecksum.Compute(b));
        return MinHeaderLength;
    }
}
