using System.Text;

namespace Serval.Wire;

/// <summary>
/// The SOURCE (type 4, IPv4) or SOURCE6 (type 5, IPv6) extension (docs/protocol.md §3, §8): the client's address, then
/// the address each service router received the SYN on, then (in a SYN-ACK) the server's address.
/// </summary>
public sealed class SalSourceRoute : IEquatable<SalSourceRoute>
{
    /// <summary>Type of the IPv4 SOURCE extension.</summary>
    public const byte TypeV4 = 4;

    /// <summary>Type of the IPv6 SOURCE6 extension.</summary>
    public const byte TypeV6 = 5;

    /// <summary>Most IPv4 addresses in a SOURCE extension.</summary>
    public const int MaxV4Addresses = 20;

    /// <summary>Most IPv6 addresses in a SOURCE6 extension.</summary>
    public const int MaxV6Addresses = 15;

    /// <summary>Fewest addresses in either extension.</summary>
    public const int MinAddresses = 2;

    private readonly LinkAddress[] _addresses;

    /// <summary>Creates a route. All addresses must be of one family; 2–20 (IPv4) or 2–15 (IPv6) of them.</summary>
    /// <exception cref="ArgumentException">The addresses are of mixed families, have ports, or their number is out of range.</exception>
    public SalSourceRoute(IEnumerable<LinkAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        _addresses = [.. addresses];
        if (_addresses.Length == 0)
        {
            throw new ArgumentException("A source route needs at least 2 addresses.", nameof(addresses));
        }

        IsIPv6 = _addresses[0].IsIPv6;
        foreach (var a in _addresses)
        {
            if (a.IsNone || a.IsIPv6 != IsIPv6)
            {
                throw new ArgumentException("All addresses of a source route must be of one IP family.", nameof(addresses));
            }
        }

        var max = IsIPv6 ? MaxV6Addresses : MaxV4Addresses;
        if (_addresses.Length < MinAddresses || _addresses.Length > max)
        {
            throw new ArgumentException($"A source route holds {MinAddresses} to {max} addresses; got {_addresses.Length}.", nameof(addresses));
        }

        for (var i = 0; i < _addresses.Length; i++)
        {
            _addresses[i] = _addresses[i].WithPort(0);
        }
    }

    private SalSourceRoute(LinkAddress[] addresses, bool v6)
    {
        _addresses = addresses;
        IsIPv6 = v6;
    }

    /// <summary>Whether this is a SOURCE6 (IPv6) route.</summary>
    public bool IsIPv6 { get; }

    /// <summary>The addresses in order (ports are 0).</summary>
    public ReadOnlySpan<LinkAddress> Addresses => _addresses;

    /// <summary>Number of addresses.</summary>
    public int Count => _addresses.Length;

    /// <summary>The first address: the original client.</summary>
    public LinkAddress First => _addresses[0];

    /// <summary>The last address.</summary>
    public LinkAddress Last => _addresses[^1];

    /// <summary>Extension length in bytes.</summary>
    public int Length => 4 + (_addresses.Length * (IsIPv6 ? 16 : 4));

    /// <summary>Whether <paramref name="address"/> (ignoring the port) is in the route — a forwarding loop when it is ours.</summary>
    public bool ContainsAddress(LinkAddress address)
    {
        foreach (var a in _addresses)
        {
            if (a.SameAddress(address))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A new route with <paramref name="address"/> appended; false when the route is full or of another family.</summary>
    public bool TryAppend(LinkAddress address, out SalSourceRoute route)
    {
        route = this;
        if (address.IsIPv6 != IsIPv6 || address.IsNone || _addresses.Length >= (IsIPv6 ? MaxV6Addresses : MaxV4Addresses))
        {
            return false;
        }

        var a = new LinkAddress[_addresses.Length + 1];
        _addresses.CopyTo(a, 0);
        a[^1] = address.WithPort(0);
        route = new SalSourceRoute(a, IsIPv6);
        return true;
    }

    /// <summary>Parses a SOURCE or SOURCE6 extension (2-byte header included).</summary>
    internal static bool TryRead(ReadOnlySpan<byte> ext, bool v6, out SalSourceRoute? route, out WireError error)
    {
        route = null;
        var size = v6 ? 16 : 4;
        var body = ext.Length - 4;
        if (ext.Length < 4 || body % size != 0)
        {
            error = WireError.BadExtensionLength;
            return false;
        }

        var n = body / size;
        if (n < MinAddresses || n > (v6 ? MaxV6Addresses : MaxV4Addresses))
        {
            error = WireError.BadSourceAddressCount;
            return false;
        }

        var a = new LinkAddress[n];
        for (var i = 0; i < n; i++)
        {
            a[i] = LinkAddress.FromBytes(ext.Slice(4 + (i * size), size));
        }

        route = new SalSourceRoute(a, v6);
        error = WireError.None;
        return true;
    }

    /// <summary>Writes the extension; returns its length.</summary>
    public int Emit(Span<byte> buffer)
    {
        buffer[0] = (byte)((IsIPv6 ? TypeV6 : TypeV4) << 4);
        buffer[1] = (byte)Length;
        buffer[2] = 0;
        buffer[3] = 0;
        var o = 4;
        foreach (var a in _addresses)
        {
            o += a.WriteAddress(buffer[o..]);
        }

        return o;
    }

    /// <inheritdoc/>
    public bool Equals(SalSourceRoute? other) =>
        other is not null && other.IsIPv6 == IsIPv6 && Addresses.SequenceEqual(other.Addresses);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as SalSourceRoute);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var a in _addresses)
        {
            h.Add(a);
        }

        return h.ToHashCode();
    }

    /// <summary>Addresses as <c>[a, b, c]</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("[");
        for (var i = 0; i < _addresses.Length; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            sb.Append(_addresses[i].ToString());
        }

        return sb.Append(']').ToString();
    }
}
