using Serval.Wire;

namespace Serval.Links;

/// <summary>What a <see cref="SocketIo"/> hands each received datagram to (the link that owns it).</summary>
internal interface ISocketIoHandler
{
    /// <summary>A datagram from <paramref name="source"/>; the span is valid only during the call.</summary>
    void OnDatagram(LinkAddress source, ReadOnlySpan<byte> datagram);
}
