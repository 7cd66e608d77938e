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

    /// <summary>
    /// A transmit slot: memory of interface <paramref name="interfaceIndex"/>'s link (its send queue) in which the
    /// engine builds its next packet of at most <paramref name="maxLength"/> bytes in place, then hands it over with
    /// <see cref="CommitTransmitSlot"/>; or an empty span when the sink has none (the engine then builds the packet in
    /// its own buffer and calls <see cref="Send"/>). The span is valid until the next call on the sink; asking again
    /// without committing returns the same memory. docs/engine.md, "Output path".
    /// </summary>
    Span<byte> GetTransmitSlot(int interfaceIndex, int maxLength) => default;

    /// <summary>
    /// Transmits the first <paramref name="length"/> bytes of the slot <see cref="GetTransmitSlot"/> last returned for
    /// <paramref name="interfaceIndex"/>, as <see cref="Send"/> would transmit them.
    /// </summary>
    void CommitTransmitSlot(int interfaceIndex, LinkAddress source, LinkAddress destination, int length, int hopLimit) =>
        throw new NotSupportedException("This sink offers no transmit slots.");
}
