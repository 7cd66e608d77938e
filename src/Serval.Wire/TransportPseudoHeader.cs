namespace Serval.Wire;

/// <summary>
/// The addresses of the IP pseudo-header a transport checksum covers (docs/protocol.md §9): the underlay's source and
/// destination IP addresses (ports are ignored). The protocol is 6 or 17 — never 144 — and the length is that of
/// the transport segment only; the SAL header is not covered.
/// </summary>
/// <param name="Source">Underlay source address.</param>
/// <param name="Destination">Underlay destination address.</param>
/// <remarks>
/// Ours: on UDP-encapsulation links (link addresses carry a UDP port) NATs rewrite the outer addresses, which the
/// outer UDP checksum already covers, so the inner transport checksum uses the unspecified address of the family
/// for both addresses (<see cref="ForLink"/>). Raw IP links use the real addresses, as the reference does.
/// </remarks>
public readonly record struct TransportPseudoHeader(LinkAddress Source, LinkAddress Destination)
{
    private static readonly LinkAddress ZeroV4 = LinkAddress.FromIPv4(0);
    private static readonly LinkAddress ZeroV6 = LinkAddress.FromBytes(new byte[16]);

    /// <summary>
    /// The pseudo-header for a packet between two link addresses: the addresses themselves on raw IP links,
    /// unspecified addresses on UDP-encapsulation links (either address has a port).
    /// </summary>
    public static TransportPseudoHeader ForLink(LinkAddress source, LinkAddress destination)
    {
        if (source.Port == 0 && destination.Port == 0)
        {
            return new TransportPseudoHeader(source, destination);
        }

        var zero = source.IsIPv6 || destination.IsIPv6 ? ZeroV6 : ZeroV4;
        return new TransportPseudoHeader(zero, zero);
    }

    /// <summary>The running checksum sum of this pseudo-header for a segment of <paramref name="length"/> bytes.</summary>
    public ulong Sum(byte protocol, int length) => InternetChecksum.PseudoHeaderSum(Source, Destination, protocol, length);
}
