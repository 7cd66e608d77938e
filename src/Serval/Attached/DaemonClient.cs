using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Serval.Daemon.Protocol;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Attached;

/// <summary>
/// The backend of an attached <see cref="ServalHost"/>: the session channel to servald (host information, rule and
/// flow requests), and every channel of this application's sockets so that detaching closes them.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The semaphores never allocate a wait handle (async waits only); nothing to dispose.")]
internal sealed class DaemonClient
{
    private readonly DaemonChannel _session;
    private readonly SemaphoreSlim _sessionLock = new(1, 1);
    private readonly ConcurrentDictionary<IRemoteObject, byte> _objects = new();
    private readonly TaskCompletionSource _gone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _state; // 0 attached, 1 detached by the application, 2 daemon gone

    private DaemonClient(string path, DaemonChannel session, string name, IReadOnlyList<LinkAddress> links)
    {
        SocketPath = path;
        _session = session;
        Name = name;
        LinkAddresses = links;
    }

    public string SocketPath { get; }

    /// <summary>The daemon host's name.</summary>
    public string Name { get; }

    /// <summary>The local addresses of the daemon host's links, in interface order.</summary>
    public IReadOnlyList<LinkAddress> LinkAddresses { get; }

    public bool IsDetached => Volatile.Read(ref _state) != 0;

    /// <summary>Completes when the application detached or the daemon went away.</summary>
    public Task Gone => _gone.Task;

    public static async Task<DaemonClient> AttachAsync(string path, CancellationToken cancellationToken)
    {
        var channel = await DaemonChannel.ConnectAsync(path, cancellationToken).ConfigureAwait(false);
        try
        {
            await channel.SendJsonAsync(new JsonObject { ["op"] = "hello" }, cancellationToken).ConfigureAwait(false);
            var reply = await channel.ReceiveReplyAsync(cancellationToken).ConfigureAwait(false)
                ?? throw new ServalException(ServalError.ConnectionRefused, $"The Serval daemon at {path} closed the connection without answering.");
            ThrowIfFailed(reply);
            var links = ((JsonArray?)reply["links"] ?? []).Select(l => LinkAddress.Parse((string)l!)).ToArray();
            var client = new DaemonClient(path, channel, (string?)reply["name"] ?? "servald", links);
            _ = client.WatchSessionAsync();
            return client;
        }
        catch
        {
            channel.Dispose();
            throw;
        }
    }

    /// <summary>The session channel carries only replies to our requests, so a read that ends means the daemon went away.</summary>
    private async Task WatchSessionAsync()
    {
        while (!IsDetached)
        {
            if (await _session.WaitForPeerActivityAsync(CancellationToken.None).ConfigureAwait(false))
            {
                OnDaemonGone();
                return;
            }

            // A reply arrived for the request that holds the lock: let it take the reply, then watch again. While we
            // hold the lock no request is in flight, so bytes still waiting then were never asked for.
            await _sessionLock.WaitAsync().ConfigureAwait(false);
            try
            {
                if (!_session.IsDisposed && _session.Socket.Available > 0)
                {
                    OnDaemonGone(); // a protocol violation: treat the daemon as gone rather than spin
                    return;
                }
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            finally
            {
                _sessionLock.Release();
            }
        }
    }

    private void OnDaemonGone()
    {
        if (Interlocked.CompareExchange(ref _state, 2, 0) != 0)
        {
            return;
        }

        _session.Dispose();
        foreach (var o in _objects.Keys)
        {
            o.OnDetached(DaemonGoneException());
        }

        _gone.TrySetResult();
    }

    public ServalException DaemonGoneException() =>
        new(ServalError.NetworkDown, $"The Serval daemon at {SocketPath} went away; this attached host no longer works.");

    /// <summary>What an operation on a detached host fails with.</summary>
    public Exception DetachedException() => Volatile.Read(ref _state) == 2
        ? DaemonGoneException()
        : new ObjectDisposedException(nameof(ServalHost), $"The attached Serval host ({SocketPath}) has been disposed.");

    public void ThrowIfDetached()
    {
        if (IsDetached)
        {
            throw DetachedException();
        }
    }

    public void Register(IRemoteObject o)
    {
        _objects[o] = 0;
        if (IsDetached && _objects.TryRemove(o, out _))
        {
            o.OnDetached(DetachedException());
        }
    }

    public void Unregister(IRemoteObject o) => _objects.TryRemove(o, out _);

    /// <summary>Sends one session request and returns its successful reply.</summary>
    public async Task<JsonObject> RequestAsync(JsonObject request, CancellationToken cancellationToken)
    {
        ThrowIfDetached();
        await _sessionLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        JsonObject? reply;
        try
        {
            ThrowIfDetached();
            await _session.SendJsonAsync(request, CancellationToken.None).ConfigureAwait(false);
            reply = await _session.ReceiveReplyAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or ObjectDisposedException)
        {
            if (!IsDetached)
            {
                OnDaemonGone();
            }

            throw DetachedException();
        }
        finally
        {
            _sessionLock.Release();
        }

        if (reply is null)
        {
            OnDaemonGone();
            throw DetachedException();
        }

        ThrowIfFailed(reply);
        return reply;
    }

    /// <summary>Opens a channel for one socket object: connect, send the open request, wait for its reply.</summary>
    public async Task<(DaemonChannel Channel, JsonObject Reply)> OpenAsync(JsonObject request, CancellationToken cancellationToken)
    {
        ThrowIfDetached();
        DaemonChannel channel;
        try
        {
            channel = await DaemonChannel.ConnectAsync(SocketPath, cancellationToken).ConfigureAwait(false);
        }
        catch (ServalException)
        {
            OnDaemonGone();
            throw DetachedException();
        }

        var watch = new OpeningChannel(this, channel);
        Register(watch);
        try
        {
            await channel.SendJsonAsync(request, cancellationToken).ConfigureAwait(false);
            var reply = await channel.ReceiveReplyAsync(cancellationToken).ConfigureAwait(false);
            if (reply is null)
            {
                throw IsDetached ? DetachedException() : DaemonGoneException();
            }

            ThrowIfFailed(reply);
            return (channel, reply);
        }
        catch (Exception e)
        {
            channel.Dispose();
            if (e is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }

            if (e is System.Net.Sockets.SocketException or IOException or ObjectDisposedException && e is not ServalException)
            {
                throw IsDetached ? DetachedException() : DaemonGoneException();
            }

            throw;
        }
        finally
        {
            Unregister(watch);
        }
    }

    private static void ThrowIfFailed(JsonObject reply)
    {
        if ((bool?)reply["ok"] != true)
        {
            throw DaemonProtocol.ToException(reply["error"]);
        }
    }

    /// <summary>Detaches: closes every channel (the daemon closes their sockets) and fails what waits with <see cref="ObjectDisposedException"/>.</summary>
    public Task DetachAsync()
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) == 0)
        {
            var reason = DetachedException();
            foreach (var o in _objects.Keys)
            {
                o.OnDetached(reason);
            }

            _objects.Clear();
            _session.Dispose();
            _gone.TrySetResult();
        }

        return Task.CompletedTask;
    }

    /// <summary>A channel whose open request is pending: detaching closes it.</summary>
    private sealed class OpeningChannel(DaemonClient client, DaemonChannel channel) : IRemoteObject
    {
        public void OnDetached(Exception reason)
        {
            _ = client;
            channel.Dispose();
        }
    }
}

/// <summary>An application object backed by a daemon channel.</summary>
internal interface IRemoteObject
{
    /// <summary>The host detached or the daemon went away: close the channel, fail what waits with <paramref name="reason"/>.</summary>
    void OnDetached(Exception reason);
}
