using Serval.Wire;

namespace Serval.Stack;

/// <summary>A packet held by a DELAY rule until a verdict or its expiry.</summary>
internal sealed class DelayedPacket
{
    /// <summary>Orders by serviceID, then id (the engine's index for rule changes under a prefix).</summary>
    public static readonly IComparer<DelayedPacket> ServiceOrder = Comparer<DelayedPacket>.Create(static (a, b) =>
    {
        var c = a.Service.CompareTo(b.Service);
        return c != 0 ? c : a.Id.CompareTo(b.Id);
    });

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

    /// <summary>The packet's node in the engine's expiry list while it is held.</summary>
    public LinkedListNode<DelayedPacket>? ExpiryNode { get; set; }
}
