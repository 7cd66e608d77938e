using Serval.Backends;
using Serval.Runtime;
using Serval.Stack;

namespace Serval;

/// <summary>
/// Accepts connections to a service or a prefix of services on one host (System.Net.Quic's <c>QuicListener</c>
/// shape). Binding installs the DEMUX rule and reports the service as registered; disposing removes both and resets
/// connections not yet accepted.
/// </summary>
/// <remarks>
/// A facade: the bound service is behind an <see cref="IListenerBackend"/>, in this process's engine or in servald
/// (docs/api.md, "Embedded and attached").
/// </remarks>
public sealed class ServalListener : IAsyncDisposable
{
    private readonly IListenerBackend _backend;
    private int _disposed;

    private ServalListener(IListenerBackend backend, ServalListenerOptions options)
    {
        _backend = backend;
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
        var backend = await options.Host.Backend.ListenAsync(options, cancellationToken).ConfigureAwait(false);
        return new ServalListener(backend, options);
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

        var connection = new ServalConnection(await AcceptAsync(cancellationToken).ConfigureAwait(false), LocalEndPoint.Service);

        // The span marks the accept (the wait for a client is not part of it): the flow and who it came from.
        if (ServalTelemetry.Source.HasListeners())
        {
            await RecordAcceptAsync(connection).ConfigureAwait(false);
        }

        return connection;
    }

    private async Task RecordAcceptAsync(ServalConnection connection)
    {
        using var activity = ServalTelemetry.Start("serval.accept", System.Diagnostics.ActivityKind.Server, _backend.TelemetryHostName, LocalEndPoint.Service);
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

        return new ServalDatagramSocket(await AcceptAsync(cancellationToken).ConfigureAwait(false));
    }

    private ValueTask<IConnectionBackend> AcceptAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        return _backend.AcceptAsync(cancellationToken);
    }

    /// <summary>Unbinds the service and resets connections not yet accepted; pending accepts fail with <see cref="ObjectDisposedException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _backend.CloseAsync().ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public override string ToString() => $"listener {LocalEndPoint}";
}
