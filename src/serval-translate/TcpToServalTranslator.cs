using System.Net;
using System.Net.Sockets;
using Serval.Wire;

namespace Serval.Translate;

/// <summary>
/// Accepts TCP connections on a local endpoint and relays each over a new Serval stream connection to one service,
/// resolved by the host's service table (a FORWARD rule, the default router, or <see cref="AdvisoryAddress"/>) — the
/// service-side translator of the paper (§7): unmodified TCP clients reach a Serval service. At most
/// <see cref="MaxConnections"/> relays run at once; further clients wait in the listen backlog.
/// </summary>
internal sealed class TcpToServalTranslator : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly ServalHost _host;
    private readonly RelayLoop<Socket> _loop;

    /// <summary>Binds the TCP listener (throws <see cref="SocketException"/> if the endpoint is taken).</summary>
    public TcpToServalTranslator(ServalHost host, IPEndPoint listen, ServiceId service, LinkAddress advisoryAddress = default, int maxConnections = 1024, TimeSpan? connectTimeout = null, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        _host = host;
        Service = service;
        AdvisoryAddress = advisoryAddress;
        MaxConnections = maxConnections;
        ConnectTimeout = connectTimeout ?? TimeSpan.FromSeconds(10);
        Log = log;
        _loop = new RelayLoop<Socket>(maxConnections, Statistics, log);
        _listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.Bind(listen);
            _listener.Listen(512);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }

        LocalEndPoint = (IPEndPoint)_listener.LocalEndPoint!;
    }

    public ServiceId Service { get; }

    public LinkAddress AdvisoryAddress { get; }

    public int MaxConnections { get; }

    public TimeSpan ConnectTimeout { get; }

    /// <summary>The TCP endpoint clients connect to (the port chosen when 0 was given).</summary>
    public IPEndPoint LocalEndPoint { get; }

    public TranslatorStatistics Statistics { get; } = new();

    /// <summary>Called with a line for each relay that failed or could not start (for logging); may be null.</summary>
    public Action<string>? Log { get; }

    public void Start() => _loop.Start(ct => _listener.AcceptAsync(ct), RelayAsync);

    private async Task RelayAsync(Socket client, CancellationToken ct)
    {
        var peer = "a TCP client";
        try
        {
            peer = client.RemoteEndPoint?.ToString() ?? peer; // kept: a reset socket no longer has it
            client.NoDelay = true;
            ServalConnection connection;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(ConnectTimeout);
                connection = await ServalConnection.ConnectAsync(
                    new ServalConnectionOptions { Host = _host, Service = Service, AdvisoryAddress = AdvisoryAddress }, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ServalException or OperationCanceledException or ObjectDisposedException)
            {
                Statistics.OnRefused();
                Log?.Invoke($"{peer} -> {Service}: {RelayLoop<Socket>.Describe(e)}; TCP connection reset");
                Relay.Reset(client);
                return;
            }

            await using (connection.ConfigureAwait(false))
            {
                await _loop.RelayAsync(client, connection.GetStream(), $"{peer} -> {Service}", ct).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            Log?.Invoke($"{peer} -> {Service}: {RelayLoop<Socket>.Describe(e)}");
            Relay.Reset(client);
        }
        finally
        {
            client.Dispose();
        }
    }

    /// <summary>Stops accepting, resets the relays still running and waits for them (bounded).</summary>
    public ValueTask DisposeAsync() => _loop.StopAsync(() =>
    {
        _listener.Dispose();
        return ValueTask.CompletedTask;
    });
}
