using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Serval;

/// <summary>
/// The address of a Serval host on a link: an IPv4 or IPv6 address and, on UDP-encapsulation links, a UDP port
/// (0 on raw IP and in-memory links). A value type that allocates nothing, so the packet path can use it freely.
/// </summary>
public readonly struct LinkAddress : IEquatable<LinkAddress>, ISpanFormattable
{
    // IPv6 bytes in two big-endian words; IPv4 addresses are kept in the low 4 bytes of _lo with _hi = 0.
    private readonly ulong _hi;
    private readonly ulong _lo;
    private readonly ushort _port;
    private readonly byte _family; // 0 none, 4, 6

    private LinkAddress(ulong hi, ulong lo, byte family, ushort port)
    {
        _hi = hi;
        _lo = lo;
        _family = family;
        _port = port;
    }

    /// <summary>The empty address (no family).</summary>
    public static LinkAddress None => default;

    /// <summary>Whether this is the empty address.</summary>
    public bool IsNone => _family == 0;

    /// <summary>Whether the address is IPv4.</summary>
    public bool IsIPv4 => _family == 4;

    /// <summary>Whether the address is IPv6.</summary>
    public bool IsIPv6 => _family == 6;

    /// <summary>The address family (InterNetwork, InterNetworkV6, or Unspecified for <see cref="None"/>).</summary>
    public AddressFamily Family => _family switch
    {
        4 => AddressFamily.InterNetwork,
        6 => AddressFamily.InterNetworkV6,
        _ => AddressFamily.Unspecified,
    };

    /// <summary>UDP port (0 when the link has no ports).</summary>
    public int Port => _port;

    /// <summary>Number of address bytes: 4, 16, or 0 for <see cref="None"/>.</summary>
    public int AddressLength => _family switch
    {
        4 => 4,
        6 => 16,
        _ => 0,
    };

    /// <summary>An IPv4 address from its big-endian 32-bit value.</summary>
    public static LinkAddress FromIPv4(uint address, int port = 0) => new(0, address, 4, checked((ushort)port));

    /// <summary>An address from raw bytes: 4 bytes for IPv4, 16 for IPv6.</summary>
    /// <exception cref="ArgumentException">The span is neither 4 nor 16 bytes.</exception>
    public static LinkAddress FromBytes(ReadOnlySpan<byte> address, int port = 0) => address.Length switch
    {
        4 => new LinkAddress(0, BinaryPrimitives.ReadUInt32BigEndian(address), 4, checked((ushort)port)),
        16 => new LinkAddress(BinaryPrimitives.ReadUInt64BigEndian(address), BinaryPrimitives.ReadUInt64BigEndian(address[8..]), 6, checked((ushort)port)),
        _ => throw new ArgumentException("An IP address is 4 or 16 bytes.", nameof(address)),
    };

    /// <summary>An address from an <see cref="IPAddress"/> (IPv4-mapped IPv6 addresses become IPv4).</summary>
    public static LinkAddress FromIPAddress(IPAddress address, int port = 0)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out var n);
        return FromBytes(b[..n], port);
    }

    /// <summary>An address from an <see cref="IPEndPoint"/>.</summary>
    public static LinkAddress FromEndPoint(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        return FromIPAddress(endPoint.Address, endPoint.Port);
    }

    /// <summary>Parses <c>a.b.c.d</c>, <c>a.b.c.d:port</c>, an IPv6 address, or <c>[v6]:port</c>.</summary>
    /// <exception cref="FormatException">The text is not an address.</exception>
    public static LinkAddress Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (IPEndPoint.TryParse(text, out var ep))
        {
            return FromEndPoint(ep);
        }

        throw new FormatException($"'{text}' is not an IP address or address:port.");
    }

    /// <summary>The same address with another port.</summary>
    public LinkAddress WithPort(int port) => new(_hi, _lo, _family, checked((ushort)port));

    /// <summary>The IPv4 address as a big-endian 32-bit value (only meaningful when <see cref="IsIPv4"/>).</summary>
    public uint IPv4Value => (uint)_lo;

    /// <summary>Whether the addresses are equal ignoring the port.</summary>
    public bool SameAddress(LinkAddress other) => _family == other._family && _hi == other._hi && _lo == other._lo;

    /// <summary>Writes the 4 or 16 address bytes; returns the number written.</summary>
    public int WriteAddress(Span<byte> destination)
    {
        if (_family == 4)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)_lo);
            return 4;
        }

        if (_family == 6)
        {
            BinaryPrimitives.WriteUInt64BigEndian(destination, _hi);
            BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _lo);
            return 16;
        }

        return 0;
    }

    /// <summary>The address as an <see cref="IPAddress"/> (allocates).</summary>
    public IPAddress ToIPAddress()
    {
        if (_family == 0)
        {
            return IPAddress.None;
        }

        Span<byte> b = stackalloc byte[16];
        var n = WriteAddress(b);
        return new IPAddress(b[..n]);
    }

    /// <summary>The address and port as an <see cref="IPEndPoint"/> (allocates).</summary>
    public IPEndPoint ToEndPoint() => new(ToIPAddress(), _port);

    /// <inheritdoc/>
    public bool Equals(LinkAddress other) => SameAddress(other) && _port == other._port;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is LinkAddress other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_hi, _lo, _family, _port);

    /// <summary>Equality.</summary>
    public static bool operator ==(LinkAddress left, LinkAddress right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(LinkAddress left, LinkAddress right) => !left.Equals(right);

    /// <summary><c>addr</c>, <c>addr:port</c> or <c>[v6]:port</c>; <c>-</c> for <see cref="None"/>.</summary>
    public override string ToString()
    {
        if (_family == 0)
        {
            return "-";
        }

        var a = ToIPAddress().ToString();
        if (_port == 0)
        {
            return a;
        }

        return _family == 6 ? $"[{a}]:{_port.ToString(CultureInfo.InvariantCulture)}" : $"{a}:{_port.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <inheritdoc/>
    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    /// <inheritdoc/>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        var s = ToString();
        if (s.Length > destination.Length)
        {
            charsWritten = 0;
            return false;
        }

        s.AsSpan().CopyTo(destination);
        charsWritten = s.Length;
        return true;
    }
}
