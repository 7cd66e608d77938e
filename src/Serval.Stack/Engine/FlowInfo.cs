using Serval.Wire;

namespace Serval.Stack;

/// <summary>A snapshot of a flow for inspection (servalctl flow list).</summary>
public sealed record FlowInfo
{
    /// <summary>The socket handle.</summary>
    public SocketHandle Socket { get; init; }

    /// <summary>Our flowID.</summary>
    public FlowId LocalFlow { get; init; }

    /// <summary>How the flow's packets are protected (docs/security.md); <see cref="FlowProtection.None"/> for an ordinary flow.</summary>
    public FlowProtection Protection { get; init; }

    /// <summary>Client: whether the server proved it holds the key of the self-certifying serviceID.</summary>
    public bool OwnershipProved { get; init; }

    /// <summary>The peer's flowID.</summary>
    public FlowId PeerFlow { get; init; }

    /// <summary>The service the connection was made to.</summary>
    public ServiceId Service { get; init; }

    /// <summary>Transport.</summary>
    public TransportProtocol Protocol { get; init; }

    /// <summary>SAL state.</summary>
    public SalState State { get; init; }

    /// <summary>Migration sub-state.</summary>
    public MigrationState Migration { get; init; }

    /// <summary>Interface index.</summary>
    public int Interface { get; init; }

    /// <summary>Our address.</summary>
    public LinkAddress LocalAddress { get; init; }

    /// <summary>The peer's address.</summary>
    public LinkAddress PeerAddress { get; init; }

    /// <summary>Packets sent.</summary>
    public long PacketsSent { get; init; }

    /// <summary>Packets received.</summary>
    public long PacketsReceived { get; init; }

    /// <summary>Bytes sent (SAL packets).</summary>
    public long BytesSent { get; init; }

    /// <summary>Bytes received (SAL packets).</summary>
    public long BytesReceived { get; init; }

    /// <summary>Control-channel smoothed RTT.</summary>
    public TimeSpan ControlSrtt { get; init; }

    /// <summary>Stream transport statistics (null for datagram flows).</summary>
    public Streams.StreamStatistics? Stream { get; init; }
}
