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

    /// <summary>
    /// Whether the link delivers packets from the sending interface's own address whatever source the sender's engine
    /// chose — UDP encapsulation (the outer source is the sending socket's, and NATs rewrite it) or an in-memory link
    /// with ports. Only on such an interface does the engine accept a first packet whose transport checksum was
    /// computed with SOURCE[0] (the client) instead of the link source (a service router's address): the router kept
    /// the client's address in the pseudo-header, but the link could not carry it. False (the default): the link
    /// source is the IP source the sender wrote, as on raw IP, and the checksum must verify against it.
    /// </summary>
    public bool RewritesSource { get; init; }
}
