namespace Serval.Wire;

/// <summary>
/// The addresses of the IP pseudo-header a transport checksum covers (PROTOCOL.md §9): the underlay's source and
/// destination IP addresses (ports are ignored). The protocol is 6 or 17 — never 144 — and the length is that of
/// the transport segment only; the SAL header is not covered.
/// </summary>
/// <param name="Source">Underlay source address.</param>
/// <param name="Destination">Underlay destination address.</param>
public readonly record struct TransportPseudoHeader(LinkAddress Source, LinkAddress Destination)
{
    /// <summary>The running checksum sum of this pseudo-header for a segment of <paramref name="length"/> bytes.</summary>
    public ulong Sum(byte protocol, int length) => InternetChecksum.PseudoHeaderSum(Source, Destination, protocol, length);
}
