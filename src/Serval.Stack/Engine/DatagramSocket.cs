using Serval.Wire;

namespace Serval.Stack;

/// <summary>An unconnected datagram socket bound to a service prefix (or auto-bound on first send).</summary>
internal sealed class DatagramSocket(SocketHandle handle, FlowId flowId) : SocketBase(handle, TransportProtocol.Datagram)
{
    /// <summary>The prefix whose DEMUX rule this socket owns, when bound.</summary>
    public ServicePrefix? Bound { get; set; }

    /// <summary>The serviceID put in the source SERVICE extension.</summary>
    public ServiceId LocalService { get; set; }

    /// <summary>The socket's flowID, used as the source flowID of its datagrams.</summary>
    public FlowId FlowId { get; } = flowId;

    public Queue<ReceivedDatagram> Queue { get; } = new();
}
