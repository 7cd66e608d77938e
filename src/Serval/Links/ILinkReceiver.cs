using Serval.Wire;

namespace Serval.Links;

/// <summary>Where a <see cref="ServalLink"/> delivers the packets it receives (the host's inbound queue, or a decorator).</summary>
public interface ILinkReceiver
{
    /// <summary>
    /// Takes a received SAL packet: <paramref name="source"/> is the sender's link address (with the UDP port on UDP
    /// links), <paramref name="destination"/> the address it was sent to, <paramref name="hopLimit"/> the IP TTL /
    /// hop limit it arrived with, or <see cref="IPHopLimit.Unknown"/> when the link cannot tell (a service router
    /// forwards with one less). The receiver copies what it keeps; the span is valid only during the call. Safe to
    /// call from any thread.
    /// </summary>
    void Receive(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit);
}
