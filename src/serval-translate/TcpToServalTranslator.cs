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
    private readonly SemaphoreSlim _slots;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _relays = [];
    private Task? _acceptLoop;
    private int _disposed;

    /// <summary>Binds the TCP listener (throws <see cref="SocketException"/> if the endpoint is taken).</summary>
    public TcpToServalTranslator(ServalHost host, IPEndPoint listen, ServiceId service, LinkAddress advisoryAddress = default, int maxConnections = 1024, TimeSpan? connectTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        _host = host;
        Service = service;
        AdvisoryAddress = advisoryAddress;
        MaxConnections = maxConnections;
        ConnectTimeout = connectTimeout ?? TimeSpan.FromSeconds(10);
        _slots = new SemaphoreSlim(maxConnections, maxConnections);
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
    public Action<string>? Log { get; init; }

    public void Start() => _acceptLoop ??= AcceptLoopAsync();

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

            Socket client;
            try
            {
                client = await _listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                _slots.Release();
                if (ct.IsCancellationRequested)
                {
                    return;
                }

                await Task.Delay(10, CancellationToken.None).ConfigureAwait(false); // e.g. EMFILE: do not spin
                continue;
            }

            Statistics.OnAccepted();
            var relay = Task.Run(() => RelayAsync(client, ct), CancellationToken.None);
            lock (_relays)
            {
                _relays.RemoveAll(t => t.IsCompleted);
                _relays.Add(relay);
            }
        }
    }

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
                Log?.Invoke($"{peer} -> {Service}: {Describe(e)}; TCP connection reset");
                Relay.Reset(client);
                return;
            }

            await using (connection.ConfigureAwait(false))
            {
                Statistics.OnStarted();
                var ok = false;
                long up = 0, down = 0;
                try
                {
                    (up, down) = await Relay.RunAsync(client, connection.GetStream(), ct).ConfigureAwait(false);
                    ok = true;
                }
                catch (Exception e)
                {
                    Log?.Invoke($"{peer} -> {Service}: relay failed: {Describe(e)}");
                }
                finally
                {
                    Statistics.OnEnded(ok, up, down);
                }
            }
        }
        catch (Exception e)
        {
            Log?.Invoke($"{peer} -> {Service}: {Describe(e)}");
            Relay.Reset(client);
        }
        finally
        {
            client.Dispose();
            _slots.Release();
        }
    }

    internal static string Describe(Exception e) => e switch
    {
        ServalException s => $"{s.Error} ({s.Message})",
        OperationCanceledException => "timed out or stopped",
        _ => e.Message,
    };

    /// <summary>Stops accepting, resets the relays still running and waits for them (bounded).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
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
