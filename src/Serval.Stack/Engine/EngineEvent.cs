using Serval.Wire;

namespace Serval.Stack;

/// <summary>A notification from the engine to its driver and controller. Fields not meaningful for a kind are default.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Socket">The socket concerned.</param>
/// <param name="Prefix">The service prefix (registration events) or destination serviceID (delayed packets, as a /256 prefix).</param>
/// <param name="Protocol">The socket's transport (registration events).</param>
/// <param name="Interface">The interface concerned.</param>
/// <param name="DelayedPacketId">Identifier of a delayed packet.</param>
/// <param name="Error">Why a socket closed.</param>
public readonly record struct EngineEvent(
    EngineEventKind Kind,
    SocketHandle Socket = default,
    ServicePrefix Prefix = default,
    TransportProtocol Protocol = default,
    int Interface = 0,
    long DelayedPacketId = 0,
    ServalError Error = ServalError.None);
