using Serval.Stack;

namespace Serval.Backends;

/// <summary>
/// What a <see cref="ServalConnection"/>, its <see cref="ServalStream"/> and a connected
/// <see cref="ServalDatagramSocket"/> do with their flow (docs/api.md, "Embedded and attached"): embedded, the flow is
/// in this process's engine (<see cref="Embedded.EmbeddedConnection"/>); attached, it is in servald
/// (<see cref="Attached.RemoteConnection"/>). The public types check arguments and their own disposal, add spans, and
/// call one of these; the two implementations behave the same as seen through the public API.
/// </summary>
internal interface IConnectionBackend
{
    /// <summary>The engine socket behind the flow; null when attached (the socket lives in servald).</summary>
    SocketHandle? EngineSocket { get; }

    /// <summary>The host's name as spans of this flow show it.</summary>
    string TelemetryHostName { get; }

    /// <summary>Completes when the peer's end of stream has been read; faults when the flow failed or was aborted.</summary>
    Task ReadsClosed { get; }

    /// <summary>Completes when writing is finished; faults when the flow failed or was aborted.</summary>
    Task WritesClosed { get; }

    /// <summary>Reads stream bytes, or one datagram of a connected datagram flow; 0 at end of stream.</summary>
    ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Writes stream bytes (<see cref="ServalStream.WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>).</summary>
    ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Sends one datagram on a connected datagram flow (not empty: the caller checks).</summary>
    ValueTask SendDatagramAsync(ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken);

    /// <summary>Finishes the write side (<see cref="ServalStream.CompleteWrites"/>).</summary>
    void CompleteWrites();

    /// <summary>A snapshot of the flow; null once it is gone.</summary>
    ValueTask<FlowInfo?> GetFlowInfoAsync(CancellationToken cancellationToken);

    /// <summary>Starts moving the flow to the host's link <paramref name="linkIndex"/>; throws <see cref="ServalException"/> when it cannot.</summary>
    ValueTask MigrateAsync(int linkIndex, CancellationToken cancellationToken);

    /// <summary>Closes gracefully or aborts; called once (the public type guards it).</summary>
    ValueTask CloseAsync(bool abort);
}
