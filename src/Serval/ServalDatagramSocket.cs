using Serval.Attached;
using Serval.Runtime;
using Serval.Stack;
using Serval.Wire;

namespace Serval;

/// <summary>
/// Datagrams to and from services. Unconnected (<see cref="BindAsync"/>): each datagram is resolved on its own and
/// arrives with the sender's serviceID (<see cref="SendToAsync"/>, <see cref="ReceiveFromAsync"/>). Connected
/// (<see cref="ConnectAsync"/>, or accepted by a datagram <see cref="ServalListener"/>): a SAL flow to one service
/// instance, which migrates like a stream (<see cref="SendAsync"/>, <see cref="ReceiveAsync"/>).
/// </summary>
public sealed class ServalDatagramSocket : IAsyncDisposable
{
    private readonly EngineDriver? _driver;
    private readonly DatagramSocketState? _unconnected;
    private readonly ConnectionState? _connected;
    private readonly RemoteDatagramSocket? _remoteUnconnected;
    private readonly RemoteConnection? _remoteConnected;
    private int _disposed;

    /// <summary>The engine socket of an embedded socket (servald records which application owns it); null when attached.</summary>
    /// <summary>
    /// The engine socket behind this datagram socket, as <see cref="FlowInfo.Socket"/> names it in
    /// <see cref="ServalHost.GetFlowsAsync"/>; null on an attached host (the socket lives in servald).
    /// </summary>
    public SocketHandle? EngineSocket => _connected?.Handle ?? _unconnected?.Handle;

    private ServalDatagramSocket(RemoteDatagramSocket remote, ServicePrefix? localPrefix)
    {
        _remoteUnconnected = remote;
        LocalPrefix = localPrefix;
    }

    internal ServalDatagramSocket(RemoteConnection remote) => _remoteConnected = remote;

    private ServalDatagramSocket(EngineDriver driver, DatagramSocketState state, ServicePrefix? localPrefix)
    {
        _driver = driver;
        _unconnected = state;
        LocalPrefix = localPrefix;
    }

    internal ServalDatagramSocket(EngineDriver driver, ConnectionState state)
    {
        _driver = driver;
        _connected = state;
    }

    /// <summary>Whether this socket is connected to one service instance.</summary>
    public bool IsConnected => _connected is not null || _remoteConnected is not null;

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
        if (host.Daemon is { } daemon)
        {
            var remote = await RemoteDatagramSocket.BindAsync(daemon, localPrefix, cancellationToken).ConfigureAwait(false);
            return new ServalDatagramSocket(remote, localPrefix);
        }

        var driver = host.Driver;
        var state = await driver.InvokeAsync(d =>
        {
            var handle = SocketHandle.None;
            var r = d.Engine.BindDatagram(localPrefix, d.Now, out handle); // AddressInUse when bound
            if (r != ServalError.None)
            {
                throw new ServalException(r, $"Cannot bind datagrams to {localPrefix}: {r}.");
            }

            var s = new DatagramSocketState(handle);
            d.Sockets[handle.Value] = s;
            return s;
        }).ConfigureAwait(false);
        return new ServalDatagramSocket(driver, state, localPrefix);
    }

    /// <summary>Opens a connected datagram flow to a service (served by a datagram <see cref="ServalListener"/>).</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="ServalException">No rule resolves the service, or no answer.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the attempt is aborted).</exception>
    public static async ValueTask<ServalDatagramSocket> ConnectAsync(ServalConnectionOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.Host.Daemon is { } daemon)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var remote = await RemoteConnection.ConnectAsync(daemon, options.Service, TransportProtocol.Datagram, options.AdvisoryAddress, cancellationToken).ConfigureAwait(false);
            return new ServalDatagramSocket(remote);
        }

        var driver = options.Host.Driver;
        var state = await ServalConnection.StartConnectAsync(driver, options, TransportProtocol.Datagram, cancellationToken).ConfigureAwait(false);
        return new ServalDatagramSocket(driver, state);
    }

    /// <summary>Sends one datagram to <paramref name="destination"/>, resolved through the service table.</summary>
    /// <exception cref="InvalidOperationException">The socket is connected.</exception>
    /// <exception cref="ServalException">No rule resolves the destination, or the datagram is empty or too large.</exception>
    public async ValueTask SendToAsync(ServiceId destination, ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken = default)
    {
        if (_unconnected is null && _remoteUnconnected is null)
        {
            throw new InvalidOperationException("A connected socket sends with SendAsync.");
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        if (_remoteUnconnected is not null)
        {
            await _remoteUnconnected.SendToAsync(destination, datagram, cancellationToken).ConfigureAwait(false);
            return;
        }

        var state = _unconnected!;
        var r = await _driver!.InvokeAsync(d => state.IsClosed ? ServalError.BadHandle : d.Engine.SendTo(state.Handle, destination, datagram.Span, d.Now)).ConfigureAwait(false);
        if (r != ServalError.None)
        {
            throw new ServalException(r);
        }
    }

    /// <summary>Receives one datagram (truncated to <paramref name="buffer"/>) with its sender's serviceID.</summary>
    /// <exception cref="InvalidOperationException">The socket is connected.</exception>
    /// <exception cref="ObjectDisposedException">The socket or the host is disposed.</exception>
    public async ValueTask<ServalReceiveResult> ReceiveFromAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_unconnected is null && _remoteUnconnected is null)
        {
            throw new InvalidOperationException("A connected socket receives with ReceiveAsync.");
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        if (_remoteUnconnected is not null)
        {
            return await _remoteUnconnected.ReceiveFromAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        var state = _unconnected!;
        var request = new DatagramSocketState.ReceiveRequest(buffer);
        using var registration = cancellationToken.UnsafeRegister(static (s, ct) => ((TaskCompletionSource<ServalReceiveResult>)s!).TrySetCanceled(ct), request.Completion);
        _driver!.Post(new ActionWorkItem<ServalReceiveResult>(d => state.BeginReceive(d, request), request.Completion));
        return await request.Completion.Task.ConfigureAwait(false);
    }

    /// <summary>Sends one datagram on a connected flow.</summary>
    /// <exception cref="InvalidOperationException">The socket is not connected.</exception>
    /// <exception cref="ServalException">The flow failed, or the datagram is empty or larger than the path allows.</exception>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken = default)
    {
        if (_connected is null && _remoteConnected is null)
        {
            throw new InvalidOperationException("An unconnected socket sends with SendToAsync.");
        }

        if (datagram.IsEmpty)
        {
            throw new ServalException(ServalError.InvalidArgument, "A datagram cannot be empty.");
        }

        if (_remoteConnected is not null)
        {
            await _remoteConnected.SendDatagramAsync(datagram, cancellationToken).ConfigureAwait(false);
            return;
        }

        await _connected!.WriteOperation.Start(_driver!, default, datagram, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Receives one datagram of a connected flow (truncated to <paramref name="buffer"/>); 0 when the peer closed.</summary>
    /// <exception cref="InvalidOperationException">The socket is not connected.</exception>
    /// <exception cref="ServalException">The flow failed.</exception>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_remoteConnected is not null)
        {
            return _remoteConnected.ReadAsync(buffer, cancellationToken);
        }

        var state = _connected ?? throw new InvalidOperationException("An unconnected socket receives with ReceiveFromAsync.");
        return state.ReadOperation.Start(_driver!, buffer, default, cancellationToken);
    }

    /// <summary>Closes the socket: unbinds its service (unconnected) or closes the flow (connected). Pending receives fail with <see cref="ObjectDisposedException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_remoteUnconnected is not null)
        {
            await _remoteUnconnected.CloseAsync().ConfigureAwait(false);
            return;
        }

        if (_remoteConnected is not null)
        {
            await _remoteConnected.CloseAsync(abort: false).ConfigureAwait(false);
            return;
        }

        try
        {
            await _driver!.InvokeAsync(d =>
            {
                _unconnected?.Close(d, new ObjectDisposedException(nameof(ServalDatagramSocket)));
                _connected?.Close(d, abort: false);
                return true;
            }).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The host stopped first and released everything.
        }
    }

    /// <inheritdoc/>
    public override string ToString() => IsConnected ? "connected datagram socket" : $"datagram socket {LocalPrefix?.ToString() ?? "unbound"}";
}
