using Serval.Wire;

namespace Serval.Stack;

/// <summary>An interface (link) of an engine.</summary>
public sealed record InterfaceConfig
{
    /// <summary>A readable name ("eth0", "udp0").</summary>
    public required string Name { get; init; }

    /// <summary>The host's address on this link (with the UDP port on UDP links).</summary>
    public required LinkAddress Address { get; init; }

    /// <summary>
    /// The link's broadcast address, or <see cref="LinkAddress.None"/>. When set, the interface installs the ad hoc
    /// default FORWARD rule to it on coming up (docs/protocol.md §7).
    /// </summary>
    public LinkAddress Broadcast { get; init; }

    /// <summary>Largest SAL packet the link carries (the link's payload size).</summary>
    public int Mtu { get; init; } = 1472;
}
