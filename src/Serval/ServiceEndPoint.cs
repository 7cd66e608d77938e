using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Serval.Wire;

namespace Serval;

/// <summary>
/// A service as an <see cref="EndPoint"/>: a serviceID, the number of leading bits that name the service (256 for
/// one service, fewer for a prefix a listener binds), and optionally an advisory link address that skips resolution.
/// Text form: <c>serviceid[/bits][@address]</c>, for example <c>0x00000001/32</c> or <c>demo.echo@127.0.0.5:54325</c>
/// (a name that is not a serviceID is hashed with <see cref="ServiceId.FromName(string)"/>; the end point then keeps
/// the name in <see cref="Name"/>, so hosts and servald can show it).
/// </summary>
public sealed class ServiceEndPoint : EndPoint, IEquatable<ServiceEndPoint>
{
    /// <summary>Creates an end point for <paramref name="service"/> (all 256 bits) with an optional advisory address.</summary>
    public ServiceEndPoint(ServiceId service, LinkAddress advisoryAddress = default)
        : this(service, ServiceId.Bits, advisoryAddress)
    {
    }

    /// <summary>Creates an end point for the prefix of <paramref name="prefixLength"/> bits of <paramref name="service"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="prefixLength"/> is not 0 to 256.</exception>
    public ServiceEndPoint(ServiceId service, int prefixLength, LinkAddress advisoryAddress = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(prefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(prefixLength, ServiceId.Bits);
        Service = service;
        PrefixLength = prefixLength;
        AdvisoryAddress = advisoryAddress;
    }

    private ServiceEndPoint(ServiceId service, int prefixLength, LinkAddress advisoryAddress, string? name)
        : this(service, prefixLength, advisoryAddress)
    {
        Name = name;
    }

    /// <summary>
    /// The service name <see cref="Service"/> was hashed from, when the end point was made from a name (<see cref="Parse"/>
    /// of <c>shop.api</c>, or <see cref="FromName"/>); null otherwise. Only informative: equality and the wire use the
    /// serviceID. A listener bound by name, on an embedded host or attached to servald, is shown as <c>name (short id)</c>
    /// in logs and servalctl's tables.
    /// </summary>
    public string? Name { get; }

    /// <summary>The end point of the service named <paramref name="name"/> (<see cref="ServiceId.FromName(string)"/>, all 256 bits), keeping the name.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    public static ServiceEndPoint FromName(string name, LinkAddress advisoryAddress = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new ServiceEndPoint(ServiceId.FromName(name), ServiceId.Bits, advisoryAddress, name);
    }

    /// <summary>This end point without its advisory address (the name kept).</summary>
    internal ServiceEndPoint WithoutAddress() => AdvisoryAddress.IsNone ? this : new ServiceEndPoint(Service, PrefixLength, LinkAddress.None, Name);

    /// <summary>The serviceID.</summary>
    public ServiceId Service { get; }

    /// <summary>How many leading bits of <see cref="Service"/> are significant (256 for a single service).</summary>
    public int PrefixLength { get; }

    /// <summary>The prefix this end point names.</summary>
    public ServicePrefix Prefix => new(Service, PrefixLength);

    /// <summary>A link address to send the first packet to instead of resolving, or <see cref="LinkAddress.None"/>.</summary>
    public LinkAddress AdvisoryAddress { get; }

    /// <summary>Serval end points have no IP address family of their own.</summary>
    public override AddressFamily AddressFamily => AddressFamily.Unspecified;

    /// <summary>Parses <c>serviceid[/bits][@address]</c>; a service part that is not a serviceID is hashed as a name.</summary>
    /// <exception cref="FormatException">The text is not an end point.</exception>
    public static ServiceEndPoint Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return TryParse(text, out var result) ? result : throw new FormatException($"'{text}' is not a service end point (serviceid[/bits][@address]).");
    }

    /// <summary>Tries to parse <c>serviceid[/bits][@address]</c>.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, [NotNullWhen(true)] out ServiceEndPoint? result)
    {
        result = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var address = LinkAddress.None;
        var at = text.LastIndexOf('@');
        if (at >= 0)
        {
            if (!IPEndPoint.TryParse(text[(at + 1)..], out var ep))
            {
                return false;
            }

            address = LinkAddress.FromEndPoint(ep);
            text = text[..at];
        }

        var bits = ServiceId.Bits;
        var slash = text.LastIndexOf('/');
        if (slash >= 0)
        {
            if (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out bits) || bits > ServiceId.Bits)
            {
                return false;
            }

            text = text[..slash];
        }

        if (text.Length == 0)
        {
            return false;
        }

        if (ServiceId.TryParse(text, CultureInfo.InvariantCulture, out var id))
        {
            result = new ServiceEndPoint(id, bits, address);
        }
        else
        {
            // A name: kept for display when it names the whole serviceID (a prefix of a hash has no name of its own).
            result = new ServiceEndPoint(ServiceId.FromName(text), bits, address, bits == ServiceId.Bits ? text : null);
        }

        return true;
    }

    /// <summary><c>serviceid[/bits][@address]</c> (the bits only when fewer than 256).</summary>
    public override string ToString()
    {
        var s = Service.ToString();
        if (PrefixLength != ServiceId.Bits)
        {
            s += "/" + PrefixLength.ToString(CultureInfo.InvariantCulture);
        }

        return AdvisoryAddress.IsNone ? s : s + "@" + AdvisoryAddress.ToString();
    }

    /// <inheritdoc/>
    public bool Equals(ServiceEndPoint? other) =>
        other is not null && Service == other.Service && PrefixLength == other.PrefixLength && AdvisoryAddress == other.AdvisoryAddress;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as ServiceEndPoint);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Service, PrefixLength, AdvisoryAddress);
}
