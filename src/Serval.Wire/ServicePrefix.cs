using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Serval;

/// <summary>
/// A serviceID prefix: the first <see cref="Length"/> bits (0–256) of <see cref="Id"/>. The stored id is canonical:
/// every bit at or after <see cref="Length"/> is zero, so two prefixes covering the same set are equal.
/// Text form: <c>ID/bits</c>; without <c>/bits</c> the prefix is the whole 256-bit serviceID.
/// </summary>
public readonly struct ServicePrefix : IEquatable<ServicePrefix>, IComparable<ServicePrefix>, ISpanParsable<ServicePrefix>, ISpanFormattable
{
    /// <summary>Creates a prefix; bits of <paramref name="id"/> beyond <paramref name="length"/> are cleared.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is outside 0–256.</exception>
    public ServicePrefix(ServiceId id, int length)
    {
        if ((uint)length > ServiceId.Bits)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "A prefix length is 0 to 256 bits.");
        }

        Id = id.Truncate(length);
        Length = length;
    }

    /// <summary>The canonical serviceID of the prefix (bits beyond <see cref="Length"/> are zero).</summary>
    public ServiceId Id { get; }

    /// <summary>Prefix length in bits, 0–256.</summary>
    public int Length { get; }

    /// <summary>The default prefix (length 0), which contains every serviceID.</summary>
    public static ServicePrefix Default => default;

    /// <summary>The full-length (256-bit) prefix of <paramref name="id"/>.</summary>
    public static ServicePrefix Exact(ServiceId id) => new(id, ServiceId.Bits);

    /// <summary>Whether <paramref name="id"/> starts with this prefix.</summary>
    public bool Contains(ServiceId id) => Length == 0 || id.CommonPrefixLength(Id) >= Length;

    /// <summary>Whether every serviceID of <paramref name="other"/> is also in this prefix.</summary>
    public bool Contains(ServicePrefix other) => other.Length >= Length && Contains(other.Id);

    /// <summary>Replaces the first <see cref="Length"/> bits of <paramref name="id"/> with this prefix's bits.</summary>
    public ServiceId Apply(ServiceId id)
    {
        var rest = new ServiceId(
            Low(id.GetWord(0), Length),
            Low(id.GetWord(1), Length - 64),
            Low(id.GetWord(2), Length - 128),
            Low(id.GetWord(3), Length - 192));
        return new ServiceId(
            Id.GetWord(0) | rest.GetWord(0),
            Id.GetWord(1) | rest.GetWord(1),
            Id.GetWord(2) | rest.GetWord(2),
            Id.GetWord(3) | rest.GetWord(3));

        static ulong Low(ulong w, int prefixBits) => prefixBits <= 0 ? w : prefixBits >= 64 ? 0 : w & (ulong.MaxValue >> prefixBits);
    }

    /// <inheritdoc/>
    public bool Equals(ServicePrefix other) => Length == other.Length && Id == other.Id;

    /// <inheritdoc/>
    public override bool Equals([NotNullWhen(true)] object? obj) => obj is ServicePrefix other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Id, Length);

    /// <summary>Orders by serviceID, then by length.</summary>
    public int CompareTo(ServicePrefix other)
    {
        var c = Id.CompareTo(other.Id);
        return c != 0 ? c : Length.CompareTo(other.Length);
    }

    /// <summary>Equality.</summary>
    public static bool operator ==(ServicePrefix left, ServicePrefix right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(ServicePrefix left, ServicePrefix right) => !left.Equals(right);

    /// <summary>Ordering.</summary>
    public static bool operator <(ServicePrefix left, ServicePrefix right) => left.CompareTo(right) < 0;

    /// <summary>Ordering.</summary>
    public static bool operator >(ServicePrefix left, ServicePrefix right) => left.CompareTo(right) > 0;

    /// <summary>Ordering.</summary>
    public static bool operator <=(ServicePrefix left, ServicePrefix right) => left.CompareTo(right) <= 0;

    /// <summary>Ordering.</summary>
    public static bool operator >=(ServicePrefix left, ServicePrefix right) => left.CompareTo(right) >= 0;

    /// <summary>Text form <c>ID/bits</c> with the id in 64 hex digits.</summary>
    public override string ToString() => ToString(null, null);

    /// <summary>Text form <c>ID/bits</c>; <paramref name="format"/> is applied to the id (see <see cref="ServiceId"/>).</summary>
    public string ToString(string? format, IFormatProvider? formatProvider) =>
        Id.ToString(format, formatProvider) + "/" + Length.ToString(CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        charsWritten = 0;
        if (!Id.TryFormat(destination, out var n, format, provider) || destination.Length < n + 1)
        {
            return false;
        }

        destination[n] = '/';
        if (!Length.TryFormat(destination[(n + 1)..], out var m, default, CultureInfo.InvariantCulture))
        {
            return false;
        }

        charsWritten = n + 1 + m;
        return true;
    }

    /// <summary>Parses <c>ID</c> or <c>ID/bits</c>.</summary>
    /// <exception cref="FormatException">The text is not a prefix.</exception>
    public static ServicePrefix Parse(string s) => Parse(s.AsSpan(), null);

    /// <inheritdoc/>
    public static ServicePrefix Parse(string s, IFormatProvider? provider)
    {
        ArgumentNullException.ThrowIfNull(s);
        return Parse(s.AsSpan(), provider);
    }

    /// <inheritdoc/>
    public static ServicePrefix Parse(ReadOnlySpan<char> s, IFormatProvider? provider)
    {
        if (!TryParse(s, out var p, out var reason))
        {
            throw new FormatException($"'{s.ToString()}' is not a service prefix: {reason}");
        }

        return p;
    }

    /// <inheritdoc/>
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out ServicePrefix result) =>
        TryParse(s.AsSpan(), out result, out _);

    /// <inheritdoc/>
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out ServicePrefix result) =>
        TryParse(s, out result, out _);

    /// <summary>Parses <c>ID</c> or <c>ID/bits</c>; on failure <paramref name="reason"/> says why.</summary>
    public static bool TryParse(ReadOnlySpan<char> s, out ServicePrefix result, out string? reason)
    {
        result = default;
        s = s.Trim();
        var slash = s.IndexOf('/');
        var idText = slash < 0 ? s : s[..slash];
        var length = ServiceId.Bits;
        if (slash >= 0)
        {
            var bitsText = s[(slash + 1)..];
            if (!int.TryParse(bitsText, NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > ServiceId.Bits)
            {
                reason = "prefix length must be 0 to 256";
                return false;
            }
        }

        if (!ServiceId.TryParse(idText, out var id, out reason))
        {
            return false;
        }

        result = new ServicePrefix(id, length);
        return true;
    }
}
