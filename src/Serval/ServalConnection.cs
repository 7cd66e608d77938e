using Serval.Backends;
using Serval.Runtime;
using Serval.Stack;
using Serval.Wire;

namespace Serval;

/// <summary>
/// A stream connection to a service (System.Net.Quic's <c>QuicConnection</c> shape, with the one bidirectional stream
/// a Serval stream flow carries: <see cref="GetStream"/>). Disposing closes gracefully; the flow lingers in the
/// engine only for the closing handshake.
/// </summary>
/// <remarks>
/// A facade: the flow is behind an <see cref="IConnectionBackend"/>, in this process's engine or in servald
/// (docs/api.md, "Embedded and attached").
/// </remarks>
public sealed class ServalConnection : IAsyncDisposable
{
    private readonly IConnectionBackend _backend;
    private readonly ServalStream _stream;
    private int _disposed;

    internal ServalConnection(IConnectionBackend backend, ServiceId service)
    {
        _backend = backend;
        Service = service;
        _stream = new ServalStream(this, backend);
    }

    /// <summary>
    /// The engine socket behind this connection, as <see cref="FlowInfo.Socket"/> names it in
    /// <see cref="ServalHost.GetFlowsAsync"/>; null on an attached host (the socket lives in servald).
    /// </summary>
    public SocketHandle? EngineSocket => _backend.EngineSocket;

    /// <summary>The service this connection was made to (on the server side: the service the listener is bound to).</summary>
    public ServiceId Service { get; }

    /// <summary>
    /// The service end point of the connection: on the client side the service connected to, the remote end; on the
    /// server side the service the listener is bound to — the local end, since a stream connection's client has no
    /// serviceID of its own (its flow and address, in <see cref="GetFlowInfoAsync"/>, name it).
    /// </summary>
    public ServiceEndPoint RemoteEndPoint => new(Service);

    /// <summary>Connects to a service: sends the SYN as the service table (or the advisory address) says, and completes when the connection is established.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="ServalException">No rule resolves the service (<see cref="ServalError.NoRoute"/>), no answer (<see cref="ServalError.TimedOut"/>), or the service refused.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the attempt is aborted).</exception>
    /// <exception cref="ObjectDisposedException">The host has stopped.</exception>
    public static async ValueTask<ServalConnection> ConnectAsync(ServalConnectionOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var serviceName = options.ServiceName;
        var host = options.Host.Backend;
        host.NameService(options.Service, serviceName);

        using var activity = ServalTelemetry.Start("serval.connect", System.Diagnostics.ActivityKind.Client, options.Host.Name, options.Service, serviceName);
        activity?.SetTag(ServalTelemetry.TransportTag, "stream");
        ServalConnection connection;
        try
        {
            var backend = await host.ConnectAsync(options, TransportProtocol.Stream, serviceName, activity, cancellationToken).ConfigureAwait(false);
            connection = new ServalConnection(backend, options.Service);
        }
        catch (Exception e)
        {
            ServalTelemetry.Failed(activity, e);
            throw;
        }

        if (activity is { IsAllDataRequested: true })
        {
            ServalTelemetry.SetFlow(activity, await connection.FlowInfoOrNullAsync().ConfigureAwait(false));
        }

        ServalTelemetry.Succeeded(activity, "connected");
        return connection;
    }

    /// <summary>The flow's snapshot for a span's tags, or null when it cannot be read (the flow is already gone).</summary>
    internal async ValueTask<FlowInfo?> FlowInfoOrNullAsync()
    {
        try
        {
            return await GetFlowInfoAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ServalException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>The connection's stream (always the same instance).</summary>
    public ServalStream GetStream() => _stream;

    /// <summary>A snapshot of the flow's addresses, state and statistics; null once it is gone.</summary>
    public async ValueTask<FlowInfo?> GetFlowInfoAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _backend.GetFlowInfoAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Moves this connection to another of the host's links (docs/protocol.md §10): an RSYN from that link's address,
    /// and the flow switches when the peer answers. Completes when the move has started; the flow keeps its data.
    /// </summary>
    /// <param name="linkIndex">Index into <see cref="ServalHost.Links"/> of the link to move to (attached: of the daemon's links).</param>
    /// <param name="cancellationToken">Cancels the wait (not the migration).</param>
    /// <exception cref="ServalException">The link is down or of another address family, or the connection cannot move in its state.</exception>
    public async ValueTask MigrateAsync(int linkIndex, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var activity = ServalTelemetry.Start("serval.migrate", System.Diagnostics.ActivityKind.Internal, _backend.TelemetryHostName, Service);
        activity?.SetTag(ServalTelemetry.LinkTag, linkIndex);
        if (activity is { IsAllDataRequested: true } && await FlowInfoOrNullAsync().ConfigureAwait(false) is { } flow)
        {
            activity.SetTag(ServalTelemetry.FlowIdTag, flow.LocalFlow.ToString());
            activity.SetTag(ServalTelemetry.PeerAddressTag, flow.PeerAddress.ToString());
        }

        try
        {
            await _backend.MigrateAsync(linkIndex, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            ServalTelemetry.Failed(activity, e);
            throw;
        }

        ServalTelemetry.Succeeded(activity, "started");
    }

    /// <summary>Closes gracefully: queued data is delivered, then the flow's FIN exchange runs in the engine (a reset instead if received data was left unread).</summary>
    public ValueTask DisposeAsync() => CloseAsync(abort: false);

    internal ValueTask CloseAsync(bool abort) =>
        Interlocked.Exchange(ref _disposed, 1) != 0 ? default : _backend.CloseAsync(abort);

    /// <inheritdoc/>
    public override string ToString() => $"connection to {Service}";
}
