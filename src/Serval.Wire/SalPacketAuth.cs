using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// The AUTH extension (type 10, 28 bytes) — ours, not in the reference: the packet number and the 16-byte AES-GCM tag
/// that authenticate one packet of an authenticated flow (docs/protocol.md §14.10, docs/security.md). Layout after the
/// 2-byte header: reserved(2), packet number(8), tag(16). It is emitted last, with a zero tag that the sender fills in
/// once the tag is computed over the packet (<see cref="TagOffset"/>).
/// </summary>
/// <param name="PacketNumber">The sender's packet number in this flow's direction (never repeated under one key).</param>
/// <param name="TagHigh">Bytes 0–7 of the tag, big-endian.</param>
/// <param name="TagLow">Bytes 8–15 of the tag, big-endian.</param>
public readonly record struct SalPacketAuth(ulong PacketNumber, ulong TagHigh = 0, ulong TagLow = 0)
{
    /// <summary>Extension type.</summary>
    public const byte Type = 10;

    /// <summary>Extension length in bytes.</summary>
    public const int Length = 28;

    /// <summary>Offset of the tag within the extension.</summary>
    public const int TagOffset = 12;

    /// <summary>Length of the tag.</summary>
    public const int TagLength = 16;

    internal static SalPacketAuth Read(ReadOnlySpan<byte> ext) => new(
        BinaryPrimitives.ReadUInt64BigEndian(ext[4..]),
        BinaryPrimitives.ReadUInt64BigEndian(ext[12..]),
        BinaryPrimitives.ReadUInt64BigEndian(ext[20..]));

    /// <summary>Writes the tag bytes into <paramref name="destination"/> (16 bytes).</summary>
    public void WriteTag(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, TagHigh);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], TagLow);
    }

    /// <summary>Writes the 28-byte extension (with this value's tag).</summary>
    public int Emit(Span<byte> buffer)
    {
        buffer[0] = Type << 4;
        buffer[1] = Length;
        buffer[2] = 0;
        buffer[3] = 0;
        BinaryPrimitives.WriteUInt64BigEndian(buffer[4..], PacketNumber);
        WriteTag(buffer[TagOffset..]);
        return Length;
    }
}
