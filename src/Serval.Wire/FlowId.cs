using System.Globalization;

namespace Serval.Wire;

/// <summary>
/// A 32-bit host-local flow identifier (docs/protocol.md §4). Zero means "unknown" (a SYN or an unconnected
/// datagram); live flows always have a non-zero id.
/// </summary>
/// <param name="Value">The numeric value, as carried big-endian on the wire.</param>
public readonly record struct FlowId(uint Value) : ISpanFormattable
{
    /// <summary>The "unknown peer" flowID, 0.</summary>
    public static FlowId None => default;

    /// <summary>Whether this is the "unknown" flowID 0.</summary>
    public bool IsNone => Value == 0;

    /// <summary>Decimal text form.</summary>
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public string ToString(string? format, IFormatProvider? formatProvider) => Value.ToString(format, formatProvider ?? CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider) =>
        Value.TryFormat(destination, out charsWritten, format, provider ?? CultureInfo.InvariantCulture);
}
