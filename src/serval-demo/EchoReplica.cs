using System.Diagnostics;
using System.Net;
using System.Text;
using Serval.Links;
using Serval.Wire;

namespace Serval.Demo;

/// <summary>One replica of the echo service: a host, a listener, and counts of what it served.</summary>
internal sealed class EchoReplica : IAsyncDisposable
{
    private readonly ServalListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly List<Task> _connections = [];
    private readonly Stopwatch _clock;
    private int _active;
    private int _accepted;
    private long _bytes;
    private TimeSpan _lastAccept;

    private EchoReplica(string name, ServalHost host, ServalListener listener, Stopwatch clock)
    {
        Name = name;
        Host = host;
        _listener = listener;
        _clock = clock;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public string Name { get; }

    public ServalHost Host { get; }

    public LinkAddress Address => Host.Links[0].LocalAddress;

    public int Accepted => Volatile.Read(ref _accepted);

    public int Active => Volatile.Read(ref _active);

    public long Bytes => Interlocked.Read(ref _bytes);

    public bool Listening { get; private set; } = true;

    /// <summary>When the last connection was accepted (demo clock).</summary>
    public TimeSpan LastAccept => _lastAccept;

    public static async Task<EchoReplica> StartAsync(string name, IPAddress address, ServiceId service, Stopwatch clock, CancellationToken cancellationToken)
    {
        var host = await ServalHost.StartAsync(new ServalHostOptions { Name = name, Links = [new UdpLink(address)] }, cancellationToken).ConfigureAwait(false);
        var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(service) }, cancellationToken).ConfigureAwait(false);
        return new EchoReplica(name, host, listener, clock);
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            ServalConnection connection;
            try
            {
                connection = await _listener.AcceptConnectionAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }

            Interlocked.Increment(ref _accepted);
            Interlocked.Increment(ref _active);
            _lastAccept = _clock.Elapsed;
            lock (_connections)
            {
                _connections.Add(ServeAsync(connection));
            }
        }
    }

    private async Task ServeAsync(ServalConnection connection)
    {
        try
        {
            await using (connection.ConfigureAwait(false))
            {
                var stream = connection.GetStream();
                using var reader = new StreamReader(stream, Encoding.UTF8, false, 1024, leaveOpen: true);
                while (await reader.ReadLineAsync(_stop.Token).ConfigureAwait(false) is { } line)
                {
                    var reply = Encoding.UTF8.GetBytes($"{Name}: {line}\n");
                    await stream.WriteAsync(reply, _stop.Token).ConfigureAwait(false);
                    Interlocked.Add(ref _bytes, line.Length + 1 + reply.Length);
                }

                stream.CompleteWrites();
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // A client went away or the demo is stopping.
        }
        finally
        {
            Interlocked.Decrement(ref _active);
        }
    }

    /// <summary>Stops accepting (the listener closes and its service unregisters); existing connections go on.</summary>
    public async ValueTask CloseListenerAsync()
    {
        Listening = false;
        await _listener.DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _listener.DisposeAsync().ConfigureAwait(false);
        await _acceptLoop.ConfigureAwait(false);
        Task[] all;
        lock (_connections)
        {
            all = [.. _connections];
        }

        await Task.WhenAll(all).ConfigureAwait(false);
        await Host.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
