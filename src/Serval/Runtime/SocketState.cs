using Serval.Stack;

namespace Serval.Runtime;

/// <summary>The runtime's side of one engine socket: what applications wait for. Engine thread only.</summary>
internal abstract class SocketState(SocketHandle handle)
{
    public SocketHandle Handle { get; } = handle;

    /// <summary>An engine event about this socket.</summary>
    public abstract void OnEvent(EngineDriver driver, in EngineEvent e);

    /// <summary>The host is stopping: release the engine socket (telling the peer) and fail what waits.</summary>
    public abstract void OnHostStopped(EngineDriver driver, Exception reason);
}
