using Serval.Attached;
using Serval.Runtime;
using Serval.Stack;
using Serval.Wire;

namespace Serval;

/// <summary>
/// A stream connection to a service (System.Net.Quic's <c>QuicConnection</c> shape, with the one bidirectional stream
/// a Serval stream flow carries: <see cref="GetStream"/>). Disposing closes gracefully; the flow lingers in the
/// engine only for the closing handshake.
/// </summary>
public sealed class ServalConnection : IAsyncDisposable
{
    private readonly EngineDriver? _driver;
    private readonly ConnectionState? _state;

    /// <summary>The engine socket of an embedded connection (servald records which application owns it); null when attached.</summary>
    /// <summary>
    /// The engine socket behind this connection, as <see cref="FlowInfo.Socket"/> names it in
    /// <see cref="ServalHost.GetFlowsAsync"/>; null on an attached host (the socket lives in servald).
    /// </summary>
    public SocketHandle? EngineSocket => _state?.Handle;
    private readonly RemoteConnection? _remote;
    private readonly ServalStream _stream;
    private int _disposed;

    internal ServalConnection(EngineDriver driver, ConnectionState state, ServiceId service)
    {
        _driver = driver;
        _state = state;
        Service = service;
        _stream = new ServalStream(this, driver, state);
    }

    internal ServalConnection(RemoteConnection remote, ServiceId service)
    {
        _remote = remote;
        Service = service;
        _stream = new ServalStream(this, remote);
    }

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
        if (options.Host.Daemon is null)
        {
            options.Host.Driver.ServiceLabels.Remember(options.Service, serviceName);
        }

        using var activity = ServalTelemetry.Start("serval.connect", System.Diagnostics.ActivityKind.Client, options.Host.Name, options.Service, serviceName);
        activity?.SetTag(ServalTelemetry.TransportTag, "stream");
        ServalConnection connection;
        try
        {
            if (options.Host.Daemon is { } daemon)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var remote = await RemoteConnection.ConnectAsync(daemon, options.Service, TransportProtocol.Stream, options.AdvisoryAddress, cancellationToken, serviceName).ConfigureAwait(false);
                connection = new ServalConnection(remote, options.Service);
            }
            else
            {
                var driver = options.Host.Driver;
                var state = await StartConnectAsync(driver, options, TransportProtocol.Stream, cancellationToken, activity).ConfigureAwait(false);
                connection = new ServalConnection(driver, state, options.Service);
            }
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

    internal static async Task<ConnectionState> StartConnectAsync(EngineDriver driver, ServalConnectionOptions options, TransportProtocol protocol, CancellationToken cancellationToken, System.Diagnostics.Activity? activity = null)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var context = activity?.Context ?? default;
        var state = await driver.InvokeAsync(d =>
        {
            // An on-demand resolution this SYN starts becomes a child of the connect span.
            d.NoteConnectContext(options.Service, context);
            var r = d.Engine.Connect(options.Service, protocol, d.Now, out var handle, options.AdvisoryAddress);
            if (r != ServalError.None)
            {
                throw new ServalException(r);
            }

            var s = new ConnectionState(handle, protocol) { Connect = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
            d.Sockets[handle.Value] = s;
            return s;
        }).ConfigureAwait(false);
        try
        {
            await state.Connect!.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            driver.Post(new FuncWorkItem<bool>(d =>
            {
                state.Close(d, abort: true);
                return true;
            }));
            throw;
        }

        return state;
    }

    /// <summary>The connection's stream (always the same instance).</summary>
    public ServalStream GetStream() => _stream;

    /// <summary>A snapshot of the flow's addresses, state and statistics; null once it is gone.</summary>
    public async ValueTask<FlowInfo?> GetFlowInfoAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_remote is not null)
        {
            return await _remote.GetFlowInfoAsync(cancellationToken).ConfigureAwait(false);
        }

        var handle = _state!.Handle;
        return await _driver!.InvokeAsync(d => d.Engine.GetFlow(handle)).WaitAsync(cancellationToken).ConfigureAwait(false);
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
        using var activity = ServalTelemetry.Start("serval.migrate", System.Diagnostics.ActivityKind.Internal, _remote is null ? _driver!.Name : "attached", Service);
        activity?.SetTag(ServalTelemetry.LinkTag, linkIndex);
        if (activity is { IsAllDataRequested: true } && await FlowInfoOrNullAsync().ConfigureAwait(false) is { } flow)
        {
            activity.SetTag(ServalTelemetry.FlowIdTag, flow.LocalFlow.ToString());
            activity.SetTag(ServalTelemetry.PeerAddressTag, flow.PeerAddress.ToString());
        }

        try
        {
            if (_remote is not null)
            {
                await _remote.MigrateAsync(linkIndex, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                var handle = _state!.Handle;
                var r = await _driver!.InvokeAsync(d =>
                {
                    var result = d.Engine.Migrate(handle, linkIndex + 1, d.Now);
                    d.NoteMigrations();
                    return result;
                }).WaitAsync(cancellationToken).ConfigureAwait(false);
                if (r != ServalError.None)
                {
                    throw new ServalException(r, $"Cannot move the connection to link {linkIndex}: {r}.");
                }
            }
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

    internal async ValueTask CloseAsync(bool abort)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_remote is not null)
        {
            await _remote.CloseAsync(abort).ConfigureAwait(false);
            return;
        }

        var state = _state!;
        try
        {
            await _driver!.InvokeAsync(d =>
            {
                state.Close(d, abort);
                return true;
            }).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The host stopped first and released everything.
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"connection to {Service}";
}
