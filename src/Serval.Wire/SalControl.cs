using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// The CONTROL extension (type 1, 20 bytes; docs/protocol.md §3): flags, the control sequence number of this packet
/// (<see cref="Verno"/>), the next verno expected from the peer (<see cref="Ackno"/>), and the sender's own nonce.
/// </summary>
/// <param name="Flags">Control flags.</param>
/// <param name="Verno">Control sequence number of this packet.</param>
/// <param name="Ackno">Next verno expected from the peer (always filled in).</param>
/// <param name="Nonce">The sender's nonce.</param>
/// <param name="Reserved">The reserved byte after the flags (0 when sent by this project).</param>
public readonly record struct SalControl(SalControlFlags Flags, uint Verno, uint Ackno, Nonce Nonce, byte Reserved = 0)
{
    /// <summary>Extension length in bytes.</summary>
    public const int Length = 20;

    /// <summary>Extension type.</summary>
    public const byte Type = 1;

    /// <summary>Whether all of <paramref name="flags"/> are set.</summary>
    public bool Has(SalControlFlags flags) => (Flags & flags) == flags;

    /// <summary>Whether this is a pure ACK (ACK and nothing else that consumes a verno).</summary>
    public bool IsPureAck => (Flags & ~SalControlFlags.Reserved) == SalControlFlags.Ack;

    /// <summary>Parses the body of a CONTROL extension whose 2-byte header starts <paramref name="ext"/>.</summary>
    internal static SalControl Read(ReadOnlySpan<byte> ext) => new(
        (SalControlFlags)ext[2],
        BinaryPrimitives.ReadUInt32BigEndian(ext[4..]),
        BinaryPrimitives.ReadUInt32BigEndian(ext[8..]),
        Nonce.Read(ext[12..]),
        ext[3]);

    /// <summary>Writes the 20-byte extension.</summary>
    public int Emit(Span<byte> buffer)
    {
        buffer[0] = Type << 4;
        buffer[1] = Length;
        buffer[2] = (byte)Flags;
        buffer[3] = Reserved;
        BinaryPrimitives.WriteUInt32BigEndian(buffer[4..], Verno);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[8..], Ackno);
        Nonce.WriteTo(buffer[12..]);
        return Length;
    }

    /// <summary>Readable form, e.g. <c>SYN|ACK verno=1 ackno=2 nonce=…</c>.</summary>
    public override string ToString() => $"{FlagsText(Flags)} verno={Verno} ackno={Ackno} nonce={Nonce}";

    /// <summary>Flag names joined by <c>|</c>, in the reference's order.</summary>
    public static string FlagsText(SalControlFlags flags)
    {
        if ((flags & ~SalControlFlags.Reserved) == 0)
        {
            return "none";
        }

        var parts = new List<string>(4);
        if ((flags & SalControlFlags.Syn) != 0)
        {
            parts.Add("SYN");
        }

        if ((flags & SalControlFlags.Rsyn) != 0)
        {
            parts.Add("RSYN");
        }

        if ((flags & SalControlFlags.Ack) != 0)
        {
            parts.Add("ACK");
        }

        if ((flags & SalControlFlags.Nack) != 0)
        {
            parts.Add("NACK");
        }

        if ((flags & SalControlFlags.Rst) != 0)
        {
            parts.Add("RST");
        }

        if ((flags & SalControlFlags.Fin) != 0)
        {
            parts.Add("FIN");
        }

        return string.Join('|', parts);
    }
}
