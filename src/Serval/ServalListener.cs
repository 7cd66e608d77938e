using Serval.Attached;
using Serval.Runtime;
using Serval.Stack;

namespace Serval;

/// <summary>
/// Accepts connections to a service or a prefix of services on one host (System.Net.Quic's <c>QuicListener</c>
/// shape). Binding installs the DEMUX rule and reports the service as registered; disposing removes both and resets
/// connections not yet accepted.
/// </summary>
public sealed class ServalListener : IAsyncDisposable
{
    private readonly EngineDriver? _driver;
    private readonly ListenerState? _state;
    private readonly RemoteListener? _remote;
    private int _disposed;

    private ServalListener(EngineDriver? driver, ListenerState? state, RemoteListener? remote, ServalListenerOptions options)
    {
        _driver = driver;
        _state = state;
        _remote = remote;
        LocalEndPoint = options.ListenEndPoint.WithoutAddress();
        Protocol = options.Protocol;
    }

    /// <summary>The service or prefix this listener is bound to (with its <see cref="ServiceEndPoint.Name"/> when bound by name).</summary>
    public ServiceEndPoint LocalEndPoint { get; }

    /// <summary>The transport of the connections this listener accepts.</summary>
    public TransportProtocol Protocol { get; }

    /// <summary>Binds a listener.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="ServalException">The service is already bound for this protocol on the host (<see cref="ServalError.AddressInUse"/>).</exception>
    /// <exception cref="ObjectDisposedException">The host has stopped.</exception>
    public static async ValueTask<ServalListener> ListenAsync(ServalListenerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        cancellationToken.ThrowIfCancellationRequested();
        if (options.Host.Daemon is { } daemon)
        {
            var remote = await RemoteListener.ListenAsync(daemon, options, cancellationToken).ConfigureAwait(false);
            return new ServalListener(null, null, remote, options);
        }

        var driver = options.Host.Driver;
        var prefix = options.ListenEndPoint.Prefix;
        driver.ServiceLabels.Remember(prefix.Id, options.ListenEndPoint.Name); // bound by name: logs show it
        var state = await driver.InvokeAsync(d =>
        {
            var handle = SocketHandle.None;
            var r = d.Engine.Listen(prefix, options.Protocol, options.ListenBacklog, d.Now, out handle); // AddressInUse when bound
            if (r != ServalError.None)
            {
                throw new ServalException(r, $"Cannot listen on {prefix}: {r}.");
            }

            var s = new ListenerState(handle, options.Protocol);
            d.Sockets[handle.Value] = s;
            return s;
        }).ConfigureAwait(false);
        return new ServalListener(driver, state, null, options);
    }

    /// <summary>Waits for the next established stream connection.</summary>
    /// <exception cref="InvalidOperationException">This is a datagram listener.</exception>
    /// <exception cref="ObjectDisposedException">The listener or the host is disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async ValueTask<ServalConnection> AcceptConnectionAsync(CancellationToken cancellationToken = default)
    {
        if (Protocol != TransportProtocol.Stream)
        {
            throw new InvalidOperationException("This listener accepts datagram flows: use AcceptDatagramSocketAsync.");
        }

        ServalConnection connection;
        if (_remote is not null)
        {
            var remote = await AcceptRemoteAsync(_remote, cancellationToken).ConfigureAwait(false);
            connection = new ServalConnection(remote, LocalEndPoint.Service);
        }
        else
        {
            var state = await AcceptAsync(cancellationToken).ConfigureAwait(false);
            connection = new ServalConnection(_driver!, state, LocalEndPoint.Service);
        }

        // The span marks the accept (the wait for a client is not part of it): the flow and who it came from.
        if (ServalTelemetry.Source.HasListeners())
        {
            await RecordAcceptAsync(connection).ConfigureAwait(false);
        }

        return connection;
    }

    private async Task RecordAcceptAsync(ServalConnection connection)
    {
        using var activity = ServalTelemetry.Start("serval.accept", System.Diagnostics.ActivityKind.Server, _driver?.Name ?? "attached", LocalEndPoint.Service);
        if (activity is null)
        {
            return;
        }

        activity.SetTag(ServalTelemetry.TransportTag, "stream");
        var flow = activity.IsAllDataRequested ? await connection.FlowInfoOrNullAsync().ConfigureAwait(false) : null;
        if (flow is not null)
        {
            activity.SetTag(ServalTelemetry.ServiceIdTag, flow.Service.ToString());
        }

        ServalTelemetry.SetFlow(activity, flow);
        ServalTelemetry.Succeeded(activity, "accepted");
    }

    /// <summary>Waits for the next connected datagram flow (a client's <see cref="ServalDatagramSocket.ConnectAsync"/>).</summary>
    /// <exception cref="InvalidOperationException">This is a stream listener.</exception>
    /// <exception cref="ObjectDisposedException">The listener or the host is disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async ValueTask<ServalDatagramSocket> AcceptDatagramSocketAsync(CancellationToken cancellationToken = default)
    {
        if (Protocol != TransportProtocol.Datagram)
        {
            throw new InvalidOperationException("This listener accepts stream connections: use AcceptConnectionAsync.");
        }

        if (_remote is not null)
        {
            var remote = await AcceptRemoteAsync(_remote, cancellationToken).ConfigureAwait(false);
            return new ServalDatagramSocket(remote);
        }

        var state = await AcceptAsync(cancellationToken).ConfigureAwait(false);
        return new ServalDatagramSocket(_driver!, state);
    }

    private async Task<RemoteConnection> AcceptRemoteAsync(RemoteListener remote, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        return await remote.AcceptAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<ConnectionState> AcceptAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        var accept = new TaskCompletionSource<ConnectionState>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = cancellationToken.UnsafeRegister(static (s, ct) => ((TaskCompletionSource<ConnectionState>)s!).TrySetCanceled(ct), accept);
        var state = _state!;
        _driver!.Post(new ActionWorkItem<ConnectionState>(d => state.BeginAccept(d, accept), accept));
        return await accept.Task.ConfigureAwait(false);
    }

    /// <summary>Unbinds the service and resets connections not yet accepted; pending accepts fail with <see cref="ObjectDisposedException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_remote is not null)
        {
            await _remote.CloseAsync().ConfigureAwait(false);
            return;
        }

        var state = _state!;
        try
        {
            await _driver!.InvokeAsync(d =>
            {
                state.Close(d, new ObjectDisposedException(nameof(ServalListener)));
                return true;
            }).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The host stopped first and released everything.
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"listener {LocalEndPoint}";
}
