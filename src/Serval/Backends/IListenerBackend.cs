namespace Serval.Backends;

/// <summary>
/// What a <see cref="ServalListener"/> does with its bound service (docs/api.md, "Embedded and attached"): embedded
/// (<see cref="Embedded.EmbeddedListener"/>) or in servald (<see cref="Attached.RemoteListener"/>).
/// </summary>
internal interface IListenerBackend
{
    /// <summary>The host's name as accept spans show it.</summary>
    string TelemetryHostName { get; }

    /// <summary>Waits for the next established connection (stream or connected datagram flow, as the listener's protocol).</summary>
    ValueTask<IConnectionBackend> AcceptAsync(CancellationToken cancellationToken);

    /// <summary>Unbinds the service; pending accepts fail with <see cref="ObjectDisposedException"/>. Called once.</summary>
    ValueTask CloseAsync();
}
