using System.Net;
using System.Net.Sockets;
using Serval.Wire;

namespace Serval.Translate;

/// <summary>
/// Listens on a service (or prefix) and relays each accepted Serval stream connection to a TCP server — the
/// translator in front of an unmodified server (paper §7): the server keeps its TCP socket, and Serval clients reach it
/// by serviceID. When the TCP server cannot be reached the Serval connection is reset. At most
/// <see cref="MaxConnections"/> relays run at once; further connections wait in the listener's accept queue.
/// </summary>
internal sealed class ServalToTcpTranslator : IAsyncDisposable
{
    private readonly ServalListener _listener;
    private readonly SemaphoreSlim _slots;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _relays = [];
    private Task? _acceptLoop;
    private int _disposed;

    private ServalToTcpTranslator(ServalListener listener, EndPoint target, int maxConnections, TimeSpan connectTimeout)
    {
        _listener = listener;
        Target = target;
        MaxConnections = maxConnections;
        ConnectTimeout = connectTimeout;
        _slots = new SemaphoreSlim(maxConnections, maxConnections);
    }

    /// <summary>Binds <paramref name="service"/> on <paramref name="host"/> (registering it like any listener).</summary>
    public static async Task<ServalToTcpTranslator> StartAsync(ServalHost host, ServicePrefix service, EndPoint target, int maxConnections = 1024, TimeSpan? connectTimeout = null, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        var listener = await ServalListener.ListenAsync(
            new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(service.Id, service.Length) }, cancellationToken).ConfigureAwait(false);
        var translator = new ServalToTcpTranslator(listener, target, maxConnections, connectTimeout ?? TimeSpan.FromSeconds(10)) { Log = log };
        translator._acceptLoop = translator.AcceptLoopAsync();
        return translator;
    }

    public EndPoint Target { get; }

    public int MaxConnections { get; }

    public TimeSpan ConnectTimeout { get; }

    public TranslatorStatistics Statistics { get; } = new();

    public Action<string>? Log { get; private init; }

    private async Task AcceptLoopAsync()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await _slots.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            ServalConnection connection;
            try
            {
                connection = await _listener.AcceptConnectionAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or ServalException)
            {
                _slots.Release();
                if (ct.IsCancellationRequested || e is ObjectDisposedException)
                {
                    return;
                }

                continue;
            }

            Statistics.OnAccepted();
            var relay = Task.Run(() => RelayAsync(connection, ct), CancellationToken.None);
            lock (_relays)
            {
                _relays.RemoveAll(t => t.IsCompleted);
                _relays.Add(relay);
            }
        }
    }

    private async Task RelayAsync(ServalConnection connection, CancellationToken ct)
    {
        await using (connection.ConfigureAwait(false))
        {
            try
            {
                var tcp = new Socket(Target.AddressFamily == AddressFamily.Unspecified ? AddressFamily.InterNetworkV6 : Target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                if (tcp.AddressFamily == AddressFamily.InterNetworkV6)
                {
                    tcp.DualMode = true;
                }

                using (tcp)
                {
                    try
                    {
                        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                        timeout.CancelAfter(ConnectTimeout);
                        await tcp.ConnectAsync(Target, timeout.Token).ConfigureAwait(false);
                        tcp.NoDelay = true;
                    }
                    catch (Exception e) when (e is SocketException or OperationCanceledException)
                    {
                        Statistics.OnRefused();
                        Log?.Invoke($"{connection.Service} -> {Target}: {TcpToServalTranslator.Describe(e)}; Serval connection reset");
                        connection.GetStream().Abort();
                        return;
                    }

                    Statistics.OnStarted();
                    var ok = false;
                    long up = 0, down = 0;
                    try
                    {
                        (up, down) = await Relay.RunAsync(tcp, connection.GetStream(), ct).ConfigureAwait(false);
                        ok = true;
                    }
                    catch (Exception e)
                    {
                        Log?.Invoke($"{connection.Service} -> {Target}: relay failed: {TcpToServalTranslator.Describe(e)}");
                    }
                    finally
                    {
                        Statistics.OnEnded(ok, up, down);
                    }
                }
            }
            catch (Exception e)
            {
                Log?.Invoke($"relay: {TcpToServalTranslator.Describe(e)}");
                connection.GetStream().Abort();
            }
            finally
            {
                _slots.Release();
            }
        }
    }

    /// <summary>Stops accepting (the service is unbound), resets the relays still running and waits for them (bounded).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await _listener.DisposeAsync().ConfigureAwait(false);
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }

        Task[] relays;
        lock (_relays)
        {
            relays = [.. _relays];
        }

        await RelayTasks.WaitBoundedAsync(relays).ConfigureAwait(false);
    }
}
