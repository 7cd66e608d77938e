using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// A view over a SAL packet's base header (docs/protocol.md §2). <see cref="TryCreate"/> checks that the buffer holds
/// the whole SAL header the length field declares; afterwards no accessor throws. Used on fast paths (service routers)
/// that edit packets in place.
/// </summary>
public readonly ref struct SalHeaderView
{
    /// <summary>Length of the base header in bytes.</summary>
    public const int BaseLength = 12;

    private readonly Span<byte> _b;

    private SalHeaderView(Span<byte> b) => _b = b;

    /// <summary>Wraps <paramref name="packet"/> (SAL header onward) after validating the header length.</summary>
    public static bool TryCreate(Span<byte> packet, out SalHeaderView view, out WireError error)
    {
        view = default;
        if (packet.Length < BaseLength)
        {
            error = WireError.Truncated;
            return false;
        }

        var hl = packet[8] * 4;
        if (hl < BaseLength || hl > packet.Length)
        {
            error = WireError.BadHeaderLength;
            return false;
        }

        view = new SalHeaderView(packet);
        error = WireError.None;
        return true;
    }

    /// <summary>The sender's flowID.</summary>
    public FlowId SourceFlow { get => new(BinaryPrimitives.ReadUInt32BigEndian(_b)); set => BinaryPrimitives.WriteUInt32BigEndian(_b, value.Value); }

    /// <summary>The receiver's flowID (0 when unknown).</summary>
    public FlowId DestinationFlow { get => new(BinaryPrimitives.ReadUInt32BigEndian(_b[4..])); set => BinaryPrimitives.WriteUInt32BigEndian(_b[4..], value.Value); }

    /// <summary>Whole SAL header length in bytes (extensions included).</summary>
    public int HeaderLength => _b[8] * 4;

    /// <summary>Transport protocol that follows (6 or 17).</summary>
    public byte Protocol => _b[9];

    /// <summary>Checksum field.</summary>
    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[10..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[10..], value); }

    /// <summary>The SAL header bytes (base + extensions).</summary>
    public Span<byte> Header => _b[..HeaderLength];

    /// <summary>The extension bytes.</summary>
    public Span<byte> Extensions => _b[BaseLength..HeaderLength];

    /// <summary>Everything after the SAL header: the transport segment.</summary>
    public Span<byte> Transport => _b[HeaderLength..];

    /// <summary>Whether the SAL checksum verifies.</summary>
    public bool VerifyChecksum() => InternetChecksum.Verify(Header);

    /// <summary>Recomputes the SAL checksum.</summary>
    public void FillChecksum()
    {
        Checksum = 0;
        Checksum = InternetChecksum.Compute(Header);
    }
}
