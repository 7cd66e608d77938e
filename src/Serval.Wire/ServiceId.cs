using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Serval;

/// <summary>
/// A 256-bit Serval serviceID (docs/protocol.md §4). Bits are numbered most significant bit of byte 0 first,
/// which is also the order used for prefixes and longest-prefix matching.
/// </summary>
/// <remarks>
/// Text forms accepted by <see cref="Parse(string)"/>: 64 hex digits; <c>0x</c> followed by 1–64 hex digits,
/// left-aligned (an odd trailing nibble is the high nibble of the next byte, as in the reference tools);
/// a decimal number N (0 ≤ N ≤ 2³²−1) meaning N big-endian in bytes 0–3 with the rest zero.
/// Format strings: <c>null</c>/<c>"x"</c> 64 lower-case hex digits; <c>"X"</c> 64 upper-case hex digits;
/// <c>"s"</c> short form: <c>0x</c> and the hex digits up to the last non-zero nibble (<c>0x0</c> for zero);
/// <c>"d"</c> the decimal form, valid only when bytes 4–31 are zero.
/// </remarks>
public readonly struct ServiceId : IEquatable<ServiceId>, IComparable<ServiceId>, IComparable, ISpanParsable<ServiceId>, ISpanFormattable
{
    /// <summary>Size of a serviceID on the wire, in bytes.</summary>
    public const int Size = 32;

    /// <summary>Number of bits in a serviceID.</summary>
    public const int Bits = 256;

    // Big-endian words: _w0 holds bytes 0..7. Numeric comparison of the words equals byte-wise order.
    private readonly ulong _w0, _w1, _w2, _w3;

    /// <summary>Creates a serviceID from its four big-endian 64-bit words (word 0 = bytes 0–7).</summary>
    public ServiceId(ulong word0, ulong word1, ulong word2, ulong word3)
    {
        _w0 = word0;
        _w1 = word1;
        _w2 = word2;
        _w3 = word3;
    }

    /// <summary>Creates a serviceID from exactly 32 bytes.</summary>
    /// <exception cref="ArgumentException"><paramref name="bytes"/> is not 32 bytes long.</exception>
    public ServiceId(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new ArgumentException($"A serviceID is {Size} bytes; got {bytes.Length}.", nameof(bytes));
        }

        _w0 = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        _w1 = BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]);
        _w2 = BinaryPrimitives.ReadUInt64BigEndian(bytes[16..]);
        _w3 = BinaryPrimitives.ReadUInt64BigEndian(bytes[24..]);
    }

    /// <summary>The all-zero serviceID (with prefix 0 it is the default rule).</summary>
    public static ServiceId Zero => default;

    /// <summary>Whether every bit is zero.</summary>
    public bool IsZero => (_w0 | _w1 | _w2 | _w3) == 0;

    /// <summary>Reads a serviceID from the first 32 bytes of <paramref name="source"/> without validation beyond length.</summary>
    public static ServiceId Read(ReadOnlySpan<byte> source) => new(source[..Size]);

    /// <summary>The serviceID whose bytes 0–3 are <paramref name="value"/> big-endian (the reference tools' numeric form).</summary>
    public static ServiceId FromNumber(uint value) => new((ulong)value << 32, 0, 0, 0);

    /// <summary>The serviceID derived from a name: SHA-256 of its UTF-8 bytes.</summary>
    public static ServiceId FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        Span<byte> hash = stackalloc byte[Size];
        var byteCount = Encoding.UTF8.GetByteCount(name);
        if (byteCount <= 512)
        {
            Span<byte> utf8 = stackalloc byte[byteCount];
            Encoding.UTF8.GetBytes(name, utf8);
            SHA256.HashData(utf8, hash);
        }
        else
        {
            SHA256.HashData(Encoding.UTF8.GetBytes(name), hash);
        }

        return new ServiceId(hash);
    }

    /// <summary>
    /// The serviceID derived from a name under a prefix: the prefix's bits followed by the remaining bits of
    /// SHA-256 of the name. Names under one prefix then share that prefix's service-table rules.
    /// </summary>
    public static ServiceId FromName(ServicePrefix prefix, string name) => prefix.Apply(FromName(name));

    /// <summary>Most prefix bits a self-certifying serviceID may have: at least 128 bits of it are the key's hash.</summary>
    public const int MaxSelfCertifyingPrefixLength = 128;

    /// <summary>
    /// A self-certifying serviceID (docs/security.md): the bits of <paramref name="prefix"/>, then the remaining bits of
    /// SHA-256 over the label <c>"serval self-certifying serviceID v1"</c>, the prefix length (1 byte), the prefix's
    /// 32 bytes and the service's 32-byte Ed25519 public key <paramref name="publicKey"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The prefix is longer than <see cref="MaxSelfCertifyingPrefixLength"/> bits, or the key is not 32 bytes.</exception>
    public static ServiceId FromPublicKey(ServicePrefix prefix, ReadOnlySpan<byte> publicKey)
    {
        if (prefix.Length > MaxSelfCertifyingPrefixLength)
        {
            throw new ArgumentException($"A self-certifying serviceID keeps at least 128 bits for the key's hash: its prefix has at most {MaxSelfCertifyingPrefixLength} bits (was {prefix.Length}).", nameof(prefix));
        }

        if (publicKey.Length != 32)
        {
            throw new ArgumentException($"An Ed25519 public key has 32 bytes (was {publicKey.Length}).", nameof(publicKey));
        }

        ReadOnlySpan<byte> label = "serval self-certifying serviceID v1"u8;
        Span<byte> input = stackalloc byte[label.Length + 1 + Size + 32];
        label.CopyTo(input);
        input[label.Length] = (byte)prefix.Length;
        prefix.Id.WriteTo(input[(label.Length + 1)..]);
        publicKey.CopyTo(input[(label.Length + 1 + Size)..]);
        Span<byte> hash = stackalloc byte[Size];
        SHA256.HashData(input, hash);
        return prefix.Apply(new ServiceId(hash));
    }

    /// <summary>
    /// Whether this serviceID is the self-certifying serviceID of <paramref name="publicKey"/> under its own first
    /// <paramref name="prefixLength"/> bits (0–128).
    /// </summary>
    public bool IsCertifiedBy(ReadOnlySpan<byte> publicKey, int prefixLength) =>
        (uint)prefixLength <= MaxSelfCertifyingPrefixLength && publicKey.Length == 32
        && FromPublicKey(new ServicePrefix(this, prefixLength), publicKey) == this;

    /// <summary>Writes the 32 bytes of this serviceID into <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _w0);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _w1);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], _w2);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], _w3);
    }

    /// <summary>Returns the 32 bytes of this serviceID as a new array.</summary>
    public byte[] ToArray()
    {
        var a = new byte[Size];
        WriteTo(a);
        return a;
    }

    /// <summary>Big-endian 64-bit word <paramref name="index"/> (0–3); word 0 holds bytes 0–7.</summary>
    public ulong GetWord(int index) => index switch
    {
        0 => _w0,
        1 => _w1,
        2 => _w2,
        3 => _w3,
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    /// <summary>Bit <paramref name="index"/> (0 = most significant bit of byte 0).</summary>
    public bool GetBit(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Bits);
        return ((GetWord(index >> 6) >> (63 - (index & 63))) & 1) != 0;
    }

    /// <summary>Returns a copy with bit <paramref name="index"/> set to <paramref name="value"/>.</summary>
    public ServiceId WithBit(int index, bool value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Bits);
        var mask = 1UL << (63 - (index & 63));
        ulong Set(ulong w) => value ? w | mask : w & ~mask;
        return (index >> 6) switch
        {
            0 => new ServiceId(Set(_w0), _w1, _w2, _w3),
            1 => new ServiceId(_w0, Set(_w1), _w2, _w3),
            2 => new ServiceId(_w0, _w1, Set(_w2), _w3),
            _ => new ServiceId(_w0, _w1, _w2, Set(_w3)),
        };
    }

    /// <summary>Reads <paramref name="count"/> (1–64) bits starting at bit <paramref name="start"/> as an unsigned number (MSB first).</summary>
    public ulong GetBits(int start, int count)
    {
        if ((uint)count - 1 > 63 || start < 0 || start + count > Bits)
        {
            throw new ArgumentOutOfRangeException(nameof(count));
        }

        var word = start >> 6;
        var offset = start & 63;
        var hi = GetWord(word) << offset;
        if (offset + count > 64)
        {
            hi |= GetWord(word + 1) >> (64 - offset);
        }

        return hi >> (64 - count);
    }

    /// <summary>Returns this serviceID with every bit at or after <paramref name="bits"/> cleared.</summary>
    public ServiceId Truncate(int bits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bits);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bits, Bits);
        return new ServiceId(Mask(_w0, bits), Mask(_w1, bits - 64), Mask(_w2, bits - 128), Mask(_w3, bits - 192));

        static ulong Mask(ulong w, int keep) => keep <= 0 ? 0 : keep >= 64 ? w : w & ~(ulong.MaxValue >> keep);
    }

    /// <summary>Number of leading bits this serviceID shares with <paramref name="other"/> (0–256).</summary>
    public int CommonPrefixLength(ServiceId other)
    {
        var x = _w0 ^ other._w0;
        if (x != 0)
        {
            return System.Numerics.BitOperations.LeadingZeroCount(x);
        }

        x = _w1 ^ other._w1;
        if (x != 0)
        {
            return 64 + System.Numerics.BitOperations.LeadingZeroCount(x);
        }

        x = _w2 ^ other._w2;
        if (x != 0)
        {
            return 128 + System.Numerics.BitOperations.LeadingZeroCount(x);
        }

        x = _w3 ^ other._w3;
        return x != 0 ? 192 + System.Numerics.BitOperations.LeadingZeroCount(x) : 256;
    }

    /// <inheritdoc/>
    public bool Equals(ServiceId other) => _w0 == other._w0 && _w1 == other._w1 && _w2 == other._w2 && _w3 == other._w3;

    /// <inheritdoc/>
    public override bool Equals([NotNullWhen(true)] object? obj) => obj is ServiceId other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_w0, _w1, _w2, _w3);

    /// <inheritdoc/>
    public int CompareTo(ServiceId other)
    {
        var c = _w0.CompareTo(other._w0);
        if (c != 0)
        {
            return c;
        }

        c = _w1.CompareTo(other._w1);
        if (c != 0)
        {
            return c;
        }

        c = _w2.CompareTo(other._w2);
        return c != 0 ? c : _w3.CompareTo(other._w3);
    }

    /// <inheritdoc/>
    public int CompareTo(object? obj) => obj switch
    {
        null => 1,
        ServiceId other => CompareTo(other),
        _ => throw new ArgumentException("Object is not a ServiceId.", nameof(obj)),
    };

    /// <summary>Equality.</summary>
    public static bool operator ==(ServiceId left, ServiceId right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(ServiceId left, ServiceId right) => !left.Equals(right);

    /// <summary>Byte-wise ordering.</summary>
    public static bool operator <(ServiceId left, ServiceId right) => left.CompareTo(right) < 0;

    /// <summary>Byte-wise ordering.</summary>
    public static bool operator >(ServiceId left, ServiceId right) => left.CompareTo(right) > 0;

    /// <summary>Byte-wise ordering.</summary>
    public static bool operator <=(ServiceId left, ServiceId right) => left.CompareTo(right) <= 0;

    /// <summary>Byte-wise ordering.</summary>
    public static bool operator >=(ServiceId left, ServiceId right) => left.CompareTo(right) >= 0;

    /// <summary>The 64 lower-case hex digit form.</summary>
    public override string ToString() => ToString(null, null);

    /// <inheritdoc/>
    public string ToString(string? format, IFormatProvider? formatProvider)
    {
        Span<char> buffer = stackalloc char[66];
        if (!TryFormat(buffer, out var written, format, formatProvider))
        {
            throw new FormatException($"Unknown ServiceId format '{format}'.");
        }

        return new string(buffer[..written]);
    }

    /// <inheritdoc/>
    /// <exception cref="FormatException">The format is unknown, or <c>"d"</c> is asked for a serviceID with bytes 4–31 not zero.</exception>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format = default, IFormatProvider? provider = null)
    {
        charsWritten = 0;
        Span<byte> bytes = stackalloc byte[Size];
        WriteTo(bytes);
        if (format.IsEmpty || format is "x" || format is "X")
        {
            if (destination.Length < 64)
            {
                return false;
            }

            var upper = format is "X";
            for (var i = 0; i < Size; i++)
            {
                destination[2 * i] = HexDigit(bytes[i] >> 4, upper);
                destination[(2 * i) + 1] = HexDigit(bytes[i] & 0xF, upper);
            }

            charsWritten = 64;
            return true;
        }

        if (format is "s")
        {
            var nibbles = 64;
            while (nibbles > 1 && Nibble(bytes, nibbles - 1) == 0)
            {
                nibbles--;
            }

            if (destination.Length < nibbles + 2)
            {
                return false;
            }

            destination[0] = '0';
            destination[1] = 'x';
            for (var i = 0; i < nibbles; i++)
            {
                destination[2 + i] = HexDigit(Nibble(bytes, i), false);
            }

            charsWritten = nibbles + 2;
            return true;
        }

        if (format is "d")
        {
            if ((_w0 & 0xFFFF_FFFF) != 0 || _w1 != 0 || _w2 != 0 || _w3 != 0)
            {
                throw new FormatException("The decimal form needs bytes 4–31 of the serviceID to be zero.");
            }

            return ((uint)(_w0 >> 32)).TryFormat(destination, out charsWritten, default, CultureInfo.InvariantCulture);
        }

        throw new FormatException($"Unknown ServiceId format '{format.ToString()}'. Use x, X, s or d.");
    }

    private static int Nibble(ReadOnlySpan<byte> bytes, int i) => (i & 1) == 0 ? bytes[i >> 1] >> 4 : bytes[i >> 1] & 0xF;

    private static char HexDigit(int v, bool upper) => (char)(v < 10 ? '0' + v : (upper ? 'A' : 'a') + v - 10);

    /// <summary>Parses any text form (see the type's remarks).</summary>
    /// <exception cref="FormatException">The text is not a serviceID.</exception>
    public static ServiceId Parse(string s) => Parse(s.AsSpan(), null);

    /// <inheritdoc/>
    public static ServiceId Parse(string s, IFormatProvider? provider)
    {
        ArgumentNullException.ThrowIfNull(s);
        return Parse(s.AsSpan(), provider);
    }

    /// <inheritdoc/>
    public static ServiceId Parse(ReadOnlySpan<char> s, IFormatProvider? provider)
    {
        if (!TryParse(s, out var id, out var reason))
        {
            throw new FormatException($"'{s.ToString()}' is not a serviceID: {reason}");
        }

        return id;
    }

    /// <inheritdoc/>
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out ServiceId result) =>
        TryParse(s.AsSpan(), out result, out _);

    /// <inheritdoc/>
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out ServiceId result) =>
        TryParse(s, out result, out _);

    /// <summary>Parses any text form; on failure <paramref name="reason"/> says why.</summary>
    public static bool TryParse(ReadOnlySpan<char> s, out ServiceId result, out string? reason)
    {
        result = default;
        s = s.Trim();
        if (s.IsEmpty)
        {
            reason = "empty";
            return false;
        }

        Span<byte> bytes = stackalloc byte[Size];
        if (s.Length >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        {
            var hex = s[2..];
            if (hex.IsEmpty || hex.Length > 64)
            {
                reason = "0x must be followed by 1 to 64 hex digits";
                return false;
            }

            if (!ParseHexLeftAligned(hex, bytes))
            {
                reason = "not a hex digit";
                return false;
            }

            result = new ServiceId(bytes);
            reason = null;
            return true;
        }

        if (s.Length == 64)
        {
            if (!ParseHexLeftAligned(s, bytes))
            {
                reason = "64 characters but not all hex digits";
                return false;
            }

            result = new ServiceId(bytes);
            reason = null;
            return true;
        }

        foreach (var c in s)
        {
            if (c is < '0' or > '9')
            {
                reason = "expected 64 hex digits, 0x followed by hex digits, or a decimal number";
                return false;
            }
        }

        if (!uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            reason = "decimal serviceID out of range (0 to 4294967295)";
            return false;
        }

        result = FromNumber(n);
        reason = null;
        return true;
    }

    private static bool ParseHexLeftAligned(ReadOnlySpan<char> hex, Span<byte> bytes)
    {
        bytes.Clear();
        for (var i = 0; i < hex.Length; i++)
        {
            var v = HexValue(hex[i]);
            if (v < 0)
            {
                return false;
            }

            bytes[i >> 1] |= (byte)((i & 1) == 0 ? v << 4 : v);
        }

        return true;
    }

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };
}
