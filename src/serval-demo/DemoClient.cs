using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Serval.Links;
using Serval.Wire;

namespace Serval.Demo;

/// <summary>
/// A client host that keeps opening short connections to the echo service by name only, each exchanging a few lines
/// over about a second, and records which replica answered.
/// </summary>
internal sealed class DemoClient : IAsyncDisposable
{
    private const int MessagesPerConnection = 4;
    private static readonly TimeSpan s_messageGap = TimeSpan.FromMilliseconds(250);

    private readonly ServiceId _service;
    private readonly Stopwatch _clock;
    private readonly List<Task> _connections = [];
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private int _sequence;
    private int _failed;

    private DemoClient(string name, ServalHost host, ServiceId service, Stopwatch clock)
    {
        Name = name;
        Host = host;
        _service = service;
        _clock = clock;
    }

    public string Name { get; }

    public ServalHost Host { get; }

    /// <summary>Completed connections: when each started, when it finished and which replica served it.</summary>
    public ConcurrentQueue<(TimeSpan At, TimeSpan Done, string Replica)> Completed { get; } = new();

    public int Failed => Volatile.Read(ref _failed);

    public int Started => Volatile.Read(ref _sequence);

    public ConcurrentQueue<string> Errors { get; } = new();

    public static async Task<DemoClient> StartAsync(string name, IPAddress address, LinkAddress router, ServiceId service, Stopwatch clock, CancellationToken cancellationToken)
    {
        var host = await ServalHost.StartAsync(
            new ServalHostOptions { Name = name, Links = [new UdpLink(address)], DefaultRouter = router },
            cancellationToken).ConfigureAwait(false);
        return new DemoClient(name, host, service, clock);
    }

    /// <summary>Opens a connection every <paramref name="interval"/> until <see cref="StopOpeningAsync"/>.</summary>
    public void Run(TimeSpan interval, int seed) => _loop = Task.Run(async () =>
    {
        var random = new Random(seed);
        while (!_stop.IsCancellationRequested)
        {
            lock (_connections)
            {
                _connections.Add(ConnectionAsync(Interlocked.Increment(ref _sequence)));
            }

            try
            {
                await Task.Delay(interval * (0.5 + random.NextDouble()), _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    });

    private async Task ConnectionAsync(int n)
    {
        var at = _clock.Elapsed;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var ct = timeout.Token;
        try
        {
            // By name only: no address anywhere. The default rule sends the SYN to the router.
            var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = Host, Service = _service }, ct).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                var stream = connection.GetStream();
                using var reader = new StreamReader(stream, Encoding.UTF8, false, 1024, leaveOpen: true);
                string? replica = null;
                for (var i = 0; i < MessagesPerConnection; i++)
                {
                    var message = $"{Name}#{n} message {i}";
                    await stream.WriteAsync(Encoding.UTF8.GetBytes(message + "\n"), ct).ConfigureAwait(false);
                    var line = await reader.ReadLineAsync(ct).ConfigureAwait(false) ?? throw new IOException("the replica closed early");
                    var colon = line.IndexOf(':', StringComparison.Ordinal);
                    if (colon < 0 || line[(colon + 2)..] != message)
                    {
                        throw new IOException($"unexpected echo '{line}'");
                    }

                    replica ??= line[..colon];
                    await Task.Delay(s_messageGap, ct).ConfigureAwait(false);
                }

                stream.CompleteWrites();
                while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is not null)
                {
                }

                Completed.Enqueue((at, _clock.Elapsed, replica!));
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            Interlocked.Increment(ref _failed);
            Errors.Enqueue($"{Name}#{n}: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Stops opening connections and waits for the open ones to finish.</summary>
    public async Task StopOpeningAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        Task[] all;
        lock (_connections)
        {
            all = [.. _connections];
        }

        await Task.WhenAll(all).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopOpeningAsync().ConfigureAwait(false);
        await Host.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
