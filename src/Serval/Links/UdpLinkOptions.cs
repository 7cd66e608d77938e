namespace Serval.Links;

/// <summary>Settings of a <see cref="UdpLink"/>. Validated by the link's constructor.</summary>
public sealed record UdpLinkOptions
{
    /// <summary>The defaults.</summary>
    public static UdpLinkOptions Default { get; } = new();

    /// <summary>Largest SAL packet (the UDP payload); null picks 1472 for IPv4 and 1452 for IPv6 (a 1500-byte path).</summary>
    public int? Mtu { get; init; }

    /// <summary>Use <c>sendmmsg</c>/<c>recvmmsg</c> on Linux (default true); false forces the managed socket calls.</summary>
    public bool UseBatching { get; init; } = true;

    /// <summary>
    /// Use UDP segmentation offload on Linux (default true; needs <see cref="UseBatching"/>): consecutive same-size
    /// datagrams to one destination leave as one <c>UDP_SEGMENT</c> send, and received datagrams are coalesced by the
    /// kernel (<c>UDP_GRO</c>) and split by the link. The link falls back by itself when the kernel refuses.
    /// </summary>
    public bool UseSegmentationOffload { get; init; } = true;

    /// <summary>
    /// Learn the link's broadcast address (IPv4: the kernel's, or the subnet's directed broadcast) or join the Serval
    /// discovery group <see cref="ServalInfo.DiscoveryGroup"/> (IPv6) on the interface that carries the address, and
    /// receive what is sent there (default true; Linux). The engine then installs the ad hoc default rule toward it and
    /// router discovery works on the link (docs/runtime.md, "Broadcast and discovery"). No effect on loopback
    /// interfaces or interfaces without broadcast (multicast) support.
    /// </summary>
    public bool Broadcast { get; init; } = true;

    /// <summary>Kernel receive buffer size requested for the socket (default 4 MiB; the kernel may cap it).</summary>
    public int SocketReceiveBufferSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>Kernel send buffer size requested for the socket (default 4 MiB; the kernel may cap it).</summary>
    public int SocketSendBufferSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Mtu is < 256 or > 65_507)
        {
            throw new ArgumentException($"{nameof(Mtu)} must be 256 to 65507 bytes (was {Mtu}).", nameof(Mtu));
        }

        if (SocketReceiveBufferSize < 0 || SocketSendBufferSize < 0)
        {
            throw new ArgumentException("Socket buffer sizes must not be negative.", nameof(SocketReceiveBufferSize));
        }
    }
}
