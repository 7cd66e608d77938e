using System.Net;
using System.Net.Sockets;

namespace Serval.Links;

/// <summary>The kind of link a <see cref="LinkPolicy"/> creates.</summary>
public enum LinkKind
{
    /// <summary>A <see cref="UdpLink"/> (UDP encapsulation) on <see cref="LinkPolicy.Port"/>.</summary>
    Udp,

    /// <summary>A <see cref="RawIpLink"/> (IP protocol 144; needs CAP_NET_RAW).</summary>
    RawIp,
}

/// <summary>
/// Links that follow the host's addresses (docs/runtime.md, "Link policies"): the host creates a link for every
/// address of the operating system's interfaces that the policy matches — at start and whenever one appears — and
/// retires it when the address goes away; the engine moves the flows of a retired link to a remaining link of their
/// family, or they wait for one (<see cref="ServalError.NetworkDown"/> after their user timeout). Linux only
/// (rtnetlink); used by <see cref="ServalHostOptions.LinkPolicies"/>.
/// </summary>
/// <remarks>
/// Loopback addresses (and every address of a loopback interface) and link-local addresses (IPv6 <c>fe80::/10</c>,
/// IPv4 <c>169.254.0.0/16</c>) are left out unless asked for; addresses still under duplicate address detection are
/// taken once it succeeds. An address that already has a link of the same kind and port (an explicit one in
/// <see cref="ServalHostOptions.Links"/>, or another policy's) gets no second one.
/// </remarks>
public sealed record LinkPolicy
{
    /// <summary>UDP links on the default port for every IPv4 and IPv6 address (no loopback, no link-local), every interface.</summary>
    public static LinkPolicy Default { get; } = new();

    /// <summary>The kind of link (default <see cref="LinkKind.Udp"/>).</summary>
    public LinkKind Kind { get; init; } = LinkKind.Udp;

    /// <summary>The UDP port of <see cref="LinkKind.Udp"/> links (default <see cref="ServalInfo.DefaultUdpPort"/>; 0 picks a free one per link).</summary>
    public int Port { get; init; } = ServalInfo.DefaultUdpPort;

    /// <summary>Create links for IPv4 addresses (default true).</summary>
    public bool IPv4 { get; init; } = true;

    /// <summary>Create links for IPv6 addresses (default true).</summary>
    public bool IPv6 { get; init; } = true;

    /// <summary>
    /// Also link-local addresses (default false): IPv6 <c>fe80::/10</c>, bound with their interface as scope (the
    /// link then sends only through that interface), and IPv4 <c>169.254.0.0/16</c>.
    /// </summary>
    public bool IncludeLinkLocal { get; init; }

    /// <summary>Also loopback addresses and the addresses of loopback interfaces (default false).</summary>
    public bool IncludeLoopback { get; init; }

    /// <summary>
    /// Which interfaces, by name (<c>eth0</c>); a name ending in <c>*</c> matches every interface whose name starts
    /// with what precedes it (<c>wl*</c>). Empty (default): every interface.
    /// </summary>
    public IReadOnlyList<string> Interfaces { get; init; } = [];

    /// <summary>Settings of the UDP links (null: <see cref="UdpLinkOptions.Default"/>).</summary>
    public UdpLinkOptions? UdpOptions { get; init; }

    /// <summary>
    /// Whether the policy wants a link for <paramref name="address"/> on the interface named
    /// <paramref name="interfaceName"/> (<paramref name="loopbackInterface"/>: the interface is a loopback interface).
    /// </summary>
    public bool Matches(string interfaceName, IPAddress address, bool loopbackInterface = false)
    {
        ArgumentNullException.ThrowIfNull(interfaceName);
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        var family = address.AddressFamily;
        if ((family == AddressFamily.InterNetwork && !IPv4) || (family == AddressFamily.InterNetworkV6 && !IPv6)
            || family is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            return false;
        }

        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || IsMulticast(address))
        {
            return false;
        }

        if (!IncludeLoopback && (loopbackInterface || IPAddress.IsLoopback(address)))
        {
            return false;
        }

        if (!IncludeLinkLocal && IsLinkLocal(address))
        {
            return false;
        }

        return Interfaces.Count == 0 || Interfaces.Any(pattern => NameMatches(pattern, interfaceName));
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Kind))
        {
            throw new ArgumentException($"{nameof(Kind)} {Kind} is not a link kind.", nameof(Kind));
        }

        if (Port is < IPEndPoint.MinPort or > IPEndPoint.MaxPort)
        {
            throw new ArgumentException($"{nameof(Port)} must be 0 to 65535 (was {Port}).", nameof(Port));
        }

        if (!IPv4 && !IPv6)
        {
            throw new ArgumentException("A link policy needs IPv4, IPv6 or both.", nameof(IPv4));
        }

        ArgumentNullException.ThrowIfNull(Interfaces, nameof(Interfaces));
        if (Interfaces.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("An interface name of a link policy is empty.", nameof(Interfaces));
        }

        UdpOptions?.Validate();
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{(Kind == LinkKind.Udp ? $"udp:{Port}" : "ip144")} {(IPv4 && IPv6 ? "ipv4+ipv6" : IPv4 ? "ipv4" : "ipv6")}"
        + (IncludeLinkLocal ? " +link-local" : string.Empty) + (IncludeLoopback ? " +loopback" : string.Empty)
        + (Interfaces.Count > 0 ? $" on {string.Join(',', Interfaces)}" : string.Empty);

    /// <summary>The port the policy's link on an address binds (0 for raw IP links), to find an existing link for it.</summary>
    internal int LinkPort => Kind == LinkKind.Udp ? Port : 0;

    /// <summary>Opens the policy's link on <paramref name="address"/> (of the interface with index <paramref name="interfaceIndex"/>).</summary>
    /// <exception cref="SocketException">The address cannot be bound.</exception>
    /// <exception cref="PlatformNotSupportedException">Raw IP links without CAP_NET_RAW.</exception>
    internal ServalLink CreateLink(IPAddress address, int interfaceIndex)
    {
        if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.IsIPv6LinkLocal)
        {
            // A link-local address is bound together with its interface.
            address = new IPAddress(address.GetAddressBytes(), interfaceIndex);
        }

        return Kind == LinkKind.Udp ? new UdpLink(address, Port, UdpOptions) : new RawIpLink(address);
    }

    internal static bool IsLinkLocal(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6
            ? address.IsIPv6LinkLocal
            : address.GetAddressBytes() is [169, 254, _, _];

    private static bool IsMulticast(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 ? address.IsIPv6Multicast : address.GetAddressBytes()[0] >= 224;

    private static bool NameMatches(string pattern, string name) =>
        pattern.EndsWith('*')
            ? name.StartsWith(pattern.AsSpan(0, pattern.Length - 1), StringComparison.Ordinal)
            : string.Equals(pattern, name, StringComparison.Ordinal);
}
