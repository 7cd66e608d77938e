using Serval.Wire;

namespace Serval.Stack;

/// <summary>Receives the packets an engine transmits (the driver's links, or the simulator).</summary>
public interface IPacketSink
{
    /// <summary>
    /// Transmits <paramref name="packet"/> (SAL header onward) on interface <paramref name="interfaceIndex"/> to
    /// <paramref name="destination"/>. <paramref name="source"/> is the address the transport checksum was computed
    /// with (a service router keeps the client's address there; links that cannot send from it ignore it).
    /// <paramref name="hopLimit"/> is the IP TTL / hop limit the packet must leave with — a service router's forwarded
    /// first packet carries the received value minus one — or <see cref="IPHopLimit.Unknown"/> for the link's default.
    /// The span is only valid during the call.
    /// </summary>
    void Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit);
}
