using System.Buffers.Binary;
using System.Globalization;

namespace Serval.Wire;

/// <summary>An 8-byte random nonce carried in the CONTROL extension (docs/protocol.md §3, §5).</summary>
/// <param name="Value">The 8 bytes read big-endian.</param>
public readonly record struct Nonce(ulong Value) : ISpanFormattable
{
    /// <summary>Size on the wire in bytes.</summary>
    public const int Size = 8;

    /// <summary>Reads a nonce from the first 8 bytes of <paramref name="source"/>.</summary>
    public static Nonce Read(ReadOnlySpan<byte> source) => new(BinaryPrimitives.ReadUInt64BigEndian(source));

    /// <summary>Writes the 8 bytes into <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination) => BinaryPrimitives.WriteUInt64BigEndian(destination, Value);

    /// <summary>16 lower-case hex digits, byte 0 first.</summary>
    public override string ToString() => Value.ToString("x16", CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    /// <inheritdoc/>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider) =>
        Value.TryFormat(destination, out charsWritten, "x16", CultureInfo.InvariantCulture);
}
