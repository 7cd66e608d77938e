using System.Text.Json.Nodes;
using Serval.Backends;
using Serval.Daemon.Protocol;
using Serval.Stack;

namespace Serval.Attached;

/// <summary>
/// The application side of a listener that lives in servald. Its channel stays open while the listener is bound
/// (closing it, or the process ending, unbinds the service); each accept opens a fresh channel that the daemon answers
/// when a connection is accepted and that then carries that connection.
/// </summary>
internal sealed class RemoteListener : IRemoteObject, IListenerBackend
{
    private readonly DaemonClient _client;
    private readonly DaemonChannel _channel;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _watch;
    private volatile Exception? _closeReason;

    private RemoteListener(DaemonClient client, DaemonChannel channel, long id, TransportProtocol protocol)
    {
        _client = client;
        _channel = channel;
        Id = id;
        Protocol = protocol;
        client.Register(this);
        _watch = WatchAsync();
    }

    public long Id { get; }

    public TransportProtocol Protocol { get; }

    public string TelemetryHostName => "attached";

    public static async Task<RemoteListener> ListenAsync(DaemonClient client, ServalListenerOptions options, CancellationToken cancellationToken)
    {
        var (channel, reply) = await client.OpenAsync(
            new JsonObject
            {
                ["op"] = "listen",
                ["service"] = options.ListenEndPoint.Service.ToString(),
                ["bits"] = options.ListenEndPoint.PrefixLength,
                ["protocol"] = options.Protocol.ToString(),
                ["backlog"] = options.ListenBacklog,

                // The name the service was bound by, if any: servald shows it in its tables and logs.
                ["name"] = options.ListenEndPoint.Name,
            },
            cancellationToken).ConfigureAwait(false);
        return new RemoteListener(client, channel, (long?)reply["id"] ?? 0, options.Protocol);
    }

    /// <summary>The listener channel carries nothing after its reply: it ending means the daemon went away.</summary>
    private async Task WatchAsync()
    {
        await _channel.WaitForPeerActivityAsync(CancellationToken.None).ConfigureAwait(false);
        OnDetached(_client.IsDetached ? _client.DetachedException() : _client.DaemonGoneException());
    }

    /// <summary>Waits for the next accepted connection on a fresh channel.</summary>
    public async Task<RemoteConnection> AcceptAsync(CancellationToken cancellationToken)
    {
        if (_closeReason is { } closed)
        {
            throw closed;
        }

        var open = _client.OpenAsync(new JsonObject { ["op"] = "accept", ["listener"] = Id }, cancellationToken);
        var done = await Task.WhenAny(open, _closed.Task).ConfigureAwait(false);
        if (done != open)
        {
            // Closed while waiting: the pending open is ended by its own channel's close (detach) or left to fail.
            _ = open.ContinueWith(
                static t =>
                {
                    if (t.IsCompletedSuccessfully)
                    {
                        t.Result.Channel.Dispose();
                    }
                    else
                    {
                        _ = t.Exception; // the daemon failed it when the listener closed: observed, nothing to do
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            throw _closeReason!;
        }

        var (channel, reply) = await open.ConfigureAwait(false);
        return RemoteConnection.Accepted(_client, channel, Protocol, reply);
    }

    async ValueTask<IConnectionBackend> IListenerBackend.AcceptAsync(CancellationToken cancellationToken) =>
        await AcceptAsync(cancellationToken).ConfigureAwait(false);

    ValueTask IListenerBackend.CloseAsync() => new(CloseAsync());

    /// <summary>Closes the listener and waits (bounded) until the daemon has unbound the service.</summary>
    public async Task CloseAsync()
    {
        if (BeginClose(new ObjectDisposedException(nameof(ServalListener))))
        {
            await _channel.ShutdownAndWaitAsync(_watch).ConfigureAwait(false);
        }
    }

    public void OnDetached(Exception reason)
    {
        if (BeginClose(reason))
        {
            _channel.Dispose();
        }
    }

    private bool BeginClose(Exception reason)
    {
        lock (_closed)
        {
            if (_closeReason is not null)
            {
                return false;
            }

            _closeReason = reason;
        }

        _client.Unregister(this);
        _closed.TrySetResult();
        return true;
    }
}
