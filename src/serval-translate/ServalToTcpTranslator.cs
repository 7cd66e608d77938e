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
    private readonly RelayLoop<ServalConnection> _loop;

    private ServalToTcpTranslator(ServalListener listener, EndPoint target, int maxConnections, TimeSpan connectTimeout, Action<string>? log)
    {
        _listener = listener;
        Target = target;
        MaxConnections = maxConnections;
        ConnectTimeout = connectTimeout;
        Log = log;
        _loop = new RelayLoop<ServalConnection>(maxConnections, Statistics, log);
    }

    /// <summary>Binds <paramref name="service"/> on <paramref name="host"/> (registering it like any listener).</summary>
    public static async Task<ServalToTcpTranslator> StartAsync(ServalHost host, ServicePrefix service, EndPoint target, int maxConnections = 1024, TimeSpan? connectTimeout = null, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        var listener = await ServalListener.ListenAsync(
            new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(service.Id, service.Length) }, cancellationToken).ConfigureAwait(false);
        var translator = new ServalToTcpTranslator(listener, target, maxConnections, connectTimeout ?? TimeSpan.FromSeconds(10), log);
        translator._loop.Start(ct => listener.AcceptConnectionAsync(ct), translator.RelayAsync);
        return translator;
    }

    public EndPoint Target { get; }

    public int MaxConnections { get; }

    public TimeSpan ConnectTimeout { get; }

    public TranslatorStatistics Statistics { get; } = new();

    public Action<string>? Log { get; }

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
                        Log?.Invoke($"{connection.Service} -> {Target}: {RelayLoop<ServalConnection>.Describe(e)}; Serval connection reset");
                        connection.GetStream().Abort();
                        return;
                    }

                    await _loop.RelayAsync(tcp, connection.GetStream(), $"{connection.Service} -> {Target}", ct).ConfigureAwait(false);
                }
            }
            catch (Exception e)
            {
                Log?.Invoke($"{connection.Service} -> {Target}: {RelayLoop<ServalConnection>.Describe(e)}");
                connection.GetStream().Abort();
            }
        }
    }

    /// <summary>Stops accepting (the service is unbound), resets the relays still running and waits for them (bounded).</summary>
    public ValueTask DisposeAsync() => _loop.StopAsync(_listener.DisposeAsync);
}
