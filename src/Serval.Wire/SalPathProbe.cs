using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// The PATH extension (type 6, 12 bytes) — ours, not in the reference: a path-validation challenge or response used
/// when a flow's packets start arriving from a new address or port (NAT rebinding on UDP links). Layout after the
/// 2-byte header: flags(1) (0x01 = response), reserved(1), challenge(8). See docs/nat-rebinding.md.
/// </summary>
/// <param name="IsResponse">False for a challenge, true for the response that echoes it.</param>
/// <param name="Challenge">The unpredictable 8-byte challenge.</param>
public readonly record struct SalPathProbe(bool IsResponse, ulong Challenge)
{
    /// <summary>Extension type.</summary>
    public const byte Type = 6;

    /// <summary>Extension length in bytes.</summary>
    public const int Length = 12;

    internal static SalPathProbe Read(ReadOnlySpan<byte> ext) => new((ext[2] & 1) != 0, BinaryPrimitives.ReadUInt64BigEndian(ext[4..]));

    /// <summary>Writes the 12-byte extension.</summary>
    public int Emit(Span<byte> buffer)
    {
        buffer[0] = Type << 4;
        buffer[1] = Length;
        buffer[2] = (byte)(IsResponse ? 1 : 0);
        buffer[3] = 0;
        BinaryPrimitives.WriteUInt64BigEndian(buffer[4..], Challenge);
        return Length;
    }
}
