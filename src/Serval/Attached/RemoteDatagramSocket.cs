using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Serval.Backends;
using Serval.Daemon.Protocol;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Attached;

/// <summary>
/// The application side of an unconnected datagram socket that lives in servald. Sends are answered one by one (so a
/// send fails like an embedded one, e.g. <see cref="ServalError.NoRoute"/>); received datagrams wait in a
/// bounded queue and are dropped when it is full, as datagrams are.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The semaphores never allocate a wait handle (async waits only); nothing to dispose.")]
internal sealed class RemoteDatagramSocket : IRemoteObject, IDatagramSocketBackend
{
    private const int QueueDatagrams = 256;

    private readonly DaemonClient _client;
    private readonly DaemonChannel _channel;
    private readonly Channel<DaemonChannel.Frame> _queue =
        Channel.CreateBounded<DaemonChannel.Frame>(new BoundedChannelOptions(QueueDatagrams) { SingleWriter = true, FullMode = BoundedChannelFullMode.DropWrite }, static f => f.Return());

    private readonly ConcurrentQueue<TaskCompletionSource> _sendResults = new();
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly SemaphoreSlim _receiveLock = new(1, 1);
    private readonly byte[] _sendBuffer = new byte[ServiceId.Size + DaemonProtocol.MaxDataChunk];
    private readonly Task _receiveLoop;
    private volatile Exception? _closeReason;

    private RemoteDatagramSocket(DaemonClient client, DaemonChannel channel)
    {
        _client = client;
        _channel = channel;
        client.Register(this);
        _receiveLoop = ReceiveLoopAsync();
    }

    public static async Task<RemoteDatagramSocket> BindAsync(DaemonClient client, ServicePrefix? prefix, CancellationToken cancellationToken)
    {
        var (channel, _) = await client.OpenAsync(
            new JsonObject { ["op"] = "bind", ["prefix"] = prefix?.ToString() },
            cancellationToken).ConfigureAwait(false);
        return new RemoteDatagramSocket(client, channel);
    }

    private async Task ReceiveLoopAsync()
    {
        try
        {
            while (true)
            {
                var frame = await _channel.ReceiveAsync().ConfigureAwait(false);
                switch (frame.Type)
                {
                    case FrameType.None:
                        Ended();
                        return;
                    case FrameType.ReceivedFrom:
                        _queue.Writer.TryWrite(frame);
                        continue;
                    case FrameType.SendResult:
                        if (_sendResults.TryDequeue(out var result))
                        {
                            if (frame.Length == 0)
                            {
                                result.TrySetResult();
                            }
                            else
                            {
                                result.TrySetException(DaemonProtocol.ErrorFromPayload(frame.Span));
                            }
                        }

                        frame.Return();
                        continue;
                    default:
                        frame.Return();
                        throw new InvalidDataException($"Unexpected frame {frame.Type} on a datagram channel.");
                }
            }
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException or InvalidDataException)
        {
            Ended();
        }
    }

    private void Ended() => OnDetached(_client.IsDetached ? _client.DetachedException() : _client.DaemonGoneException());

    public async ValueTask SendToAsync(ServiceId destination, ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken)
    {
        if (datagram.Length > DaemonProtocol.MaxDataChunk)
        {
            throw new ServalException(ServalError.InvalidArgument, $"A datagram cannot be larger than {DaemonProtocol.MaxDataChunk} bytes.");
        }

        var result = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfClosed();
            destination.WriteTo(_sendBuffer);
            datagram.Span.CopyTo(_sendBuffer.AsSpan(ServiceId.Size));
            _sendResults.Enqueue(result);
            await _channel.SendAsync(FrameType.SendTo, _sendBuffer.AsMemory(0, ServiceId.Size + datagram.Length), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            throw _closeReason ?? _client.DetachedException();
        }
        finally
        {
            _sendLock.Release();
        }

        if (_closeReason is { } closed)
        {
            result.TrySetException(closed);
        }

        await result.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<ServalReceiveResult> ReceiveFromAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        ThrowIfClosed();
        await _receiveLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (true)
            {
                if (_queue.Reader.TryRead(out var frame))
                {
                    try
                    {
                        var source = DaemonProtocol.DecodeReceivedFrom(frame.Span, out var address, out var data);
                        var n = Math.Min(data.Length, buffer.Length);
                        data[..n].CopyTo(buffer.Span);
                        return new ServalReceiveResult(n, source, address);
                    }
                    finally
                    {
                        frame.Return();
                    }
                }

                if (!await _queue.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    throw _closeReason ?? new ObjectDisposedException(nameof(ServalDatagramSocket));
                }
            }
        }
        finally
        {
            _receiveLock.Release();
        }
    }

    private void ThrowIfClosed()
    {
        if (_closeReason is { } closed)
        {
            throw closed;
        }
    }

    /// <summary>Closes the socket and waits (bounded) until the daemon has closed its socket (and unbound its service).</summary>
    /// <summary>Null: the engine socket lives in servald.</summary>
    public SocketHandle? EngineSocket => null;

    ValueTask IDatagramSocketBackend.CloseAsync() => new(CloseAsync());

    public async Task CloseAsync()
    {
        if (BeginClose(new ObjectDisposedException(nameof(ServalDatagramSocket))))
        {
            await _channel.ShutdownAndWaitAsync(_receiveLoop).ConfigureAwait(false);
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
        lock (_queue)
        {
            if (_closeReason is not null)
            {
                return false;
            }

            _closeReason = reason;
        }

        _client.Unregister(this);
        _queue.Writer.TryComplete();
        while (_sendResults.TryDequeue(out var pending))
        {
            pending.TrySetException(reason);
        }

        while (_queue.Reader.TryRead(out var f))
        {
            f.Return();
        }

        return true;
    }
}
