using Serval.Wire;

namespace Serval.Stack;

/// <summary>A listening socket: owns a DEMUX rule, pending requests and the accept queue.</summary>
internal sealed class ListenerSocket(SocketHandle handle, TransportProtocol protocol, ServicePrefix prefix, int backlog)
    : SocketBase(handle, protocol)
{
    public ServicePrefix Prefix { get; } = prefix;

    /// <summary>The key of a self-certifying serviceID this listener proves ownership of in its SYN-ACKs, or null.</summary>
    public ServiceKey? Key { get; set; }

    public int Backlog { get; } = backlog;

    /// <summary>Pending requests keyed by the client's flowID and nonce (a duplicate SYN finds its request).</summary>
    public Dictionary<(uint PeerFlow, ulong PeerNonce), Flow> Pending { get; } = [];

    /// <summary>Established connections not yet accepted.</summary>
    public Queue<Flow> AcceptQueue { get; } = new();

    /// <summary>Pending requests whose verified handshake ACK met a full accept queue, completed as room appears.</summary>
    public Queue<Flow> Deferred { get; } = new();

    /// <summary>When this listener last answered a SYN with a cookie (null: never); cookie ACKs are checked only after.</summary>
    public TimeSpan? LastCookieAt { get; set; }
}
