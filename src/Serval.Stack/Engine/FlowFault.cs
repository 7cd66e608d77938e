using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// An unexpected exception raised while the engine processed one flow (a packet, a timer, output or a socket call).
/// The engine reset that flow and went on; the driver drains these with <see cref="Engine.TryGetFault"/> to log them.
/// </summary>
/// <param name="Socket">The flow's socket handle (none when the fault happened before a flow existed).</param>
/// <param name="LocalFlow">Our flowID.</param>
/// <param name="PeerFlow">The peer's flowID.</param>
/// <param name="PeerAddress">The peer's link address.</param>
/// <param name="Service">The flow's serviceID.</param>
/// <param name="Where">What the engine was doing: "receive", "timer", "output" or the socket call.</param>
/// <param name="Exception">The exception.</param>
public sealed record FlowFault(
    SocketHandle Socket,
    FlowId LocalFlow,
    FlowId PeerFlow,
    LinkAddress PeerAddress,
    ServiceId Service,
    string Where,
    Exception Exception);
