namespace Serval.Stack.ControlPlane;

/// <summary>The kind of a control-plane message (docs/control-protocol.md, "Types").</summary>
public enum ControlMessageType : byte
{
    /// <summary>Host → router: install (or refresh) a FORWARD rule for a prefix toward the sender's address.</summary>
    Register = 1,

    /// <summary>Host → router: remove the sender's registration of a prefix.</summary>
    Unregister = 2,

    /// <summary>Router → host: answer to a <see cref="Register"/>.</summary>
    RegisterAck = 3,

    /// <summary>Router → host: answer to an <see cref="Unregister"/>.</summary>
    UnregisterAck = 4,

    /// <summary>Host → router: where does this serviceID resolve (on-demand resolution, docs/control-protocol.md §9)?</summary>
    Resolve = 5,

    /// <summary>Router → host: answer to a <see cref="Resolve"/>, carrying up to <see cref="ControlProtocol.MaxResolveTargets"/> targets.</summary>
    ResolveAck = 6,

    /// <summary>
    /// Host → link broadcast: is there a service router on this link (router discovery, docs/control-protocol.md §12)?
    /// Sent to <see cref="ControlProtocol.SolicitServiceId"/>; routers answer with a <see cref="RouterAdvertise"/>.
    /// </summary>
    RouterSolicit = 7,

    /// <summary>
    /// Router → link broadcast: a service router is here, with its serviceID, epoch and how long to remember it (router
    /// discovery, docs/control-protocol.md §12). Sent to <see cref="ControlProtocol.AdvertiseServiceId"/>.
    /// </summary>
    RouterAdvertise = 8,
}
