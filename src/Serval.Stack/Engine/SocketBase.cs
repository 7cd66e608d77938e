namespace Serval.Stack;

/// <summary>Common state of every socket kind.</summary>
internal abstract class SocketBase(SocketHandle handle, TransportProtocol protocol)
{
    public SocketHandle Handle { get; } = handle;

    public TransportProtocol Protocol { get; } = protocol;

    /// <summary>The application released the handle; the engine may still finish the protocol's work.</summary>
    public bool Released { get; set; }
}
