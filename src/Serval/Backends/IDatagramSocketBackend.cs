using Serval.Stack;

namespace Serval.Backends;

/// <summary>
/// What an unconnected <see cref="ServalDatagramSocket"/> does (docs/api.md, "Embedded and attached"): embedded
/// (<see cref="Embedded.EmbeddedDatagramSocket"/>) or in servald (<see cref="Attached.RemoteDatagramSocket"/>). A
/// connected datagram socket is a flow, an <see cref="IConnectionBackend"/>.
/// </summary>
internal interface IDatagramSocketBackend
{
    /// <summary>The engine socket; null when attached (the socket lives in servald).</summary>
    SocketHandle? EngineSocket { get; }

    /// <summary>Sends one datagram, resolved through the service table.</summary>
    ValueTask SendToAsync(ServiceId destination, ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken);

    /// <summary>Receives one datagram with its sender's serviceID.</summary>
    ValueTask<ServalReceiveResult> ReceiveFromAsync(Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Unbinds the socket; pending receives fail with <see cref="ObjectDisposedException"/>. Called once.</summary>
    ValueTask CloseAsync();
}
