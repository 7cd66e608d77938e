using Serval.Wire;

namespace Serval.Stack;

/// <summary>A packet held by a DELAY rule until a verdict or its expiry.</summary>
internal sealed class DelayedPacket
{
    public long Id { get; init; }

    public TimeSpan ExpiresAt { get; init; }

    public ServiceId Service { get; init; }

    /// <summary>A local connection whose SYN waits.</summary>
    public Flow? Flow { get; init; }

    /// <summary>A local datagram socket whose datagram waits (with <see cref="Payload"/>).</summary>
    public SocketHandle DatagramSocket { get; init; }

    public byte[]? Payload { get; init; }

    /// <summary>A received packet (service-router mode) with its arrival details.</summary>
    public byte[]? Packet { get; init; }

    public int Interface { get; init; }

    public LinkAddress Source { get; init; }

    public LinkAddress Destination { get; init; }

    /// <summary>The received packet's IP TTL / hop limit (<see cref="IPHopLimit.Unknown"/> when the link did not say).</summary>
    public int HopLimit { get; init; } = IPHopLimit.Unknown;
}
