using Serval.Wire;

namespace Serval.Links;

/// <summary>What a <see cref="SocketIo"/> hands each received datagram to (the link that owns it).</summary>
internal interface ISocketIoHandler
{
    /// <summary>
    /// A datagram from <paramref name="source"/>, with the hop limit the kernel reported in an <c>IPV6_HOPLIMIT</c>
    /// control message (sockets that asked for it, batching receive path only) or <see cref="IPHopLimit.Unknown"/>;
    /// the span is valid only during the call.
    /// </summary>
    void OnDatagram(LinkAddress source, ReadOnlySpan<byte> datagram, int hopLimit);
}
