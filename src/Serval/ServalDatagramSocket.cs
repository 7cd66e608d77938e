using Serval.Backends;
using Serval.Stack;

namespace Serval;

/// <summary>
/// Datagrams to and from services. Unconnected (<see cref="BindAsync"/>): each datagram is resolved on its own and
/// arrives with the sender's serviceID (<see cref="SendToAsync"/>, <see cref="ReceiveFromAsync"/>). Connected
/// (<see cref="ConnectAsync"/>, or accepted by a datagram <see cref="ServalListener"/>): a SAL flow to one service
/// instance, which migrates like a stream (<see cref="SendAsync"/>, <see cref="ReceiveAsync"/>).
/// </summary>
/// <remarks>
/// A facade: an unconnected socket is behind an <see cref="IDatagramSocketBackend"/>, a connected one behind the
/// <see cref="IConnectionBackend"/> of its flow, each in this process's engine or in servald (docs/api.md, "Embedded
/// and attached").
/// </remarks>
public sealed class ServalDatagramSocket : IAsyncDisposable
{
    private readonly IDatagramSocketBackend? _unconnected;
    private readonly IConnectionBackend? _connected;
    private int _disposed;

    /// <summary>
    /// The engine socket behind this datagram socket, as <see cref="FlowInfo.Socket"/> names it in
    /// <see cref="ServalHost.GetFlowsAsync"/>; null on an attached host (the socket lives in servald).
    /// </summary>
    public SocketHandle? EngineSocket => _connected is not null ? _connected.EngineSocket : _unconnected!.EngineSocket;

    private ServalDatagramSocket(IDatagramSocketBackend unconnected, ServicePrefix? localPrefix)
    {
        _unconnected = unconnected;
        LocalPrefix = localPrefix;
    }

    internal ServalDatagramSocket(IConnectionBackend connected) => _connected = connected;

    /// <summary>Whether this socket is connected to one service instance.</summary>
    public bool IsConnected => _connected is not null;

    /// <summary>The prefix an unconnected socket is bound to, or null (unbound, or connected).</summary>
    public ServicePrefix? LocalPrefix { get; }

    /// <summary>
    /// Creates an unconnected socket bound to <paramref name="localPrefix"/> (installs its DEMUX rule and registers
    /// it), or unbound when null: it then gets a random serviceID on its first send so that replies find it.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="host"/> is null.</exception>
    /// <exception cref="ServalException">The prefix is already bound for datagrams (<see cref="ServalError.AddressInUse"/>) or invalid.</exception>
    /// <exception cref="ObjectDisposedException">The host has stopped.</exception>
    public static async ValueTask<ServalDatagramSocket> BindAsync(ServalHost host, ServicePrefix? localPrefix = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(host);
        cancellationToken.ThrowIfCancellationRequested();
        var backend = await host.Backend.BindDatagramAsync(localPrefix, cancellationToken).ConfigureAwait(false);
        return new ServalDatagramSocket(backend, localPrefix);
    }

    /// <summary>Opens a connected datagram flow to a service (served by a datagram <see cref="ServalListener"/>).</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="ServalException">No rule resolves the service, or no answer.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the attempt is aborted).</exception>
    public static async ValueTask<ServalDatagramSocket> ConnectAsync(ServalConnectionOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var backend = await options.Host.Backend.ConnectAsync(options, TransportProtocol.Datagram, serviceName: null, activity: null, cancellationToken).ConfigureAwait(false);
        return new ServalDatagramSocket(backend);
    }

    /// <summary>Sends one datagram to <paramref name="destination"/>, resolved through the service table.</summary>
    /// <exception cref="InvalidOperationException">The socket is connected.</exception>
    /// <exception cref="ServalException">No rule resolves the destination, or the datagram is empty or too large.</exception>
    public async ValueTask SendToAsync(ServiceId destination, ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken = default)
    {
        if (_unconnected is null)
        {
            throw new InvalidOperationException("A connected socket sends with SendAsync.");
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        await _unconnected.SendToAsync(destination, datagram, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Receives one datagram (truncated to <paramref name="buffer"/>) with its sender's serviceID.</summary>
    /// <exception cref="InvalidOperationException">The socket is connected.</exception>
    /// <exception cref="ObjectDisposedException">The socket or the host is disposed.</exception>
    public async ValueTask<ServalReceiveResult> ReceiveFromAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_unconnected is null)
        {
            throw new InvalidOperationException("A connected socket receives with ReceiveAsync.");
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        return await _unconnected.ReceiveFromAsync(buffer, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends one datagram on a connected flow.</summary>
    /// <exception cref="InvalidOperationException">The socket is not connected.</exception>
    /// <exception cref="ServalException">The flow failed, or the datagram is empty or larger than the path allows.</exception>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken = default)
    {
        if (_connected is null)
        {
            throw new InvalidOperationException("An unconnected socket sends with SendToAsync.");
        }

        if (datagram.IsEmpty)
        {
            throw new ServalException(ServalError.InvalidArgument, "A datagram cannot be empty.");
        }

        await _connected.SendDatagramAsync(datagram, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Receives one datagram of a connected flow (truncated to <paramref name="buffer"/>); 0 when the peer closed.</summary>
    /// <exception cref="InvalidOperationException">The socket is not connected.</exception>
    /// <exception cref="ServalException">The flow failed.</exception>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var connected = _connected ?? throw new InvalidOperationException("An unconnected socket receives with ReceiveFromAsync.");
        return connected.ReadAsync(buffer, cancellationToken);
    }

    /// <summary>Closes the socket: unbinds its service (unconnected) or closes the flow (connected). Pending receives fail with <see cref="ObjectDisposedException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_connected is not null)
        {
            await _connected.CloseAsync(abort: false).ConfigureAwait(false);
        }
        else
        {
            await _unconnected!.CloseAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public override string ToString() => IsConnected ? "connected datagram socket" : $"datagram socket {LocalPrefix?.ToString() ?? "unbound"}";
}
