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
/// The application side of a connection (stream, or connected datagram flow) that lives in servald: one channel whose
/// frames carry the data both ways. Received frames wait in a bounded queue (a stream stops reading the channel when
/// it is full, which backs up into the daemon and the flow's window; a datagram flow drops). Writes complete when
/// their frames are in the channel.
/// </summary>
/// <remarks>
/// A failure of the daemon's connection (reset, time-out, …) arrives as <see cref="FrameType.ReadFailed"/> or an
/// erroneous <see cref="FrameType.WritesClosed"/>, whichever comes first: from then on writes fail with it, and reads
/// fail with it once the bytes the daemon had already forwarded are read — never end of stream.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The semaphores never allocate a wait handle (async waits only); nothing to dispose.")]
internal sealed class RemoteConnection : IRemoteObject, IConnectionBackend
{
    private const int StreamQueueFrames = 64;
    private const int DatagramQueueFrames = 256;

    private readonly DaemonClient _client;
    private readonly DaemonChannel _channel;
    private readonly Channel<DaemonChannel.Frame> _queue;
    private readonly ConcurrentQueue<TaskCompletionSource> _sendResults = new();
    private readonly SemaphoreSlim _datagramSend = new(1, 1);
    private DaemonChannel.Frame _current;
    private int _currentOffset;
    private int _readBusy;
    private int _writeBusy;
    private volatile Exception? _localError;
    private volatile Exception? _readError;
    private volatile Exception? _writeError;
    private volatile bool _writesCompleted;
    private int _closed;
    private readonly Task _receiveLoop;

    private RemoteConnection(DaemonClient client, DaemonChannel channel, TransportProtocol protocol, long id)
    {
        _client = client;
        _channel = channel;
        Protocol = protocol;
        Id = id;
        _queue = protocol == TransportProtocol.Stream
            ? Channel.CreateBounded<DaemonChannel.Frame>(new BoundedChannelOptions(StreamQueueFrames) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait })
            : Channel.CreateBounded<DaemonChannel.Frame>(new BoundedChannelOptions(DatagramQueueFrames) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.DropWrite }, static f => f.Return());
        Observe(ReadsClosed.Task);
        Observe(WritesClosed.Task);
        client.Register(this);
        _receiveLoop = ReceiveLoopAsync();
    }

    private static void Observe(Task task) =>
        task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    public TransportProtocol Protocol { get; }

    /// <summary>The daemon's id of this connection (session requests name it).</summary>
    public long Id { get; }

    public TaskCompletionSource ReadsClosed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource WritesClosed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Null: the engine socket lives in servald.</summary>
    public SocketHandle? EngineSocket => null;

    public string TelemetryHostName => "attached";

    Task IConnectionBackend.ReadsClosed => ReadsClosed.Task;

    Task IConnectionBackend.WritesClosed => WritesClosed.Task;

    /// <summary>Opens a connection in servald; <paramref name="name"/>, the name the service was given by, if any, is shown in servald's tables and logs.</summary>
    public static async Task<RemoteConnection> ConnectAsync(DaemonClient client, ServiceId service, TransportProtocol protocol, LinkAddress advisory, CancellationToken cancellationToken, string? name = null)
    {
        var (channel, reply) = await client.OpenAsync(
            new JsonObject
            {
                ["op"] = "connect",
                ["service"] = service.ToString(),
                ["protocol"] = protocol.ToString(),
                ["advisory"] = advisory.ToString(),
                ["name"] = name,
            },
            cancellationToken).ConfigureAwait(false);
        return new RemoteConnection(client, channel, protocol, (long?)reply["id"] ?? 0);
    }

    public static RemoteConnection Accepted(DaemonClient client, DaemonChannel channel, TransportProtocol protocol, JsonObject reply) =>
        new(client, channel, protocol, (long?)reply["id"] ?? 0);

    // ------------------------------------------------------------------------------------------------------------
    // Receiving

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
                        OnChannelEnded(null);
                        return;
                    case FrameType.Data:
                        if (Protocol == TransportProtocol.Stream)
                        {
                            try
                            {
                                await _queue.Writer.WriteAsync(frame).ConfigureAwait(false);
                            }
                            catch (ChannelClosedException)
                            {
                                frame.Return(); // closed locally
                            }
                        }
                        else
                        {
                            _queue.Writer.TryWrite(frame); // full: the datagram is dropped (and returned)
                        }

                        continue;
                    case FrameType.EndOfStream:
                        _queue.Writer.TryComplete();
                        break;
                    case FrameType.ReadFailed:
                        {
                            var e = DaemonProtocol.ErrorFromPayload(frame.Span);
                            if (e is ServalException)
                            {
                                _writeError ??= e; // the connection failed: writes fail too, from now on
                            }

                            _readError = e;
                            _queue.Writer.TryComplete();
                            ReadsClosed.TrySetException(e);
                            break;
                        }

                    case FrameType.WritesClosed:
                        if (frame.Length == 0)
                        {
                            WritesClosed.TrySetResult();
                        }
                        else
                        {
                            var e = DaemonProtocol.ErrorFromPayload(frame.Span);
                            if (e is ServalException)
                            {
                                // The connection failed: writes fail from now on, and reads once the bytes already
                                // forwarded are read (even after an end of stream the daemon sent before the failure).
                                _writeError ??= e;
                                _readError ??= e;
                            }

                            WritesClosed.TrySetException(e);
                        }

                        break;
                    case FrameType.WriteFailed:
                        _writeError = DaemonProtocol.ErrorFromPayload(frame.Span);
                        break;
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

                        break;
                    default:
                        frame.Return();
                        throw new InvalidDataException($"Unexpected frame {frame.Type} on a connection channel.");
                }

                frame.Return();
            }
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException or InvalidDataException)
        {
            OnChannelEnded(e);
        }
    }

    /// <summary>The channel ended: fine after a local close; otherwise the daemon went away.</summary>
    private void OnChannelEnded(Exception? e)
    {
        var reason = _localError ?? (_client.IsDetached ? _client.DetachedException() : _client.DaemonGoneException());
        _ = e;
        Fail(reason);
    }

    private void Fail(Exception reason)
    {
        _localError ??= reason;
        _readError ??= reason;
        _queue.Writer.TryComplete();
        ReadsClosed.TrySetException(reason);
        WritesClosed.TrySetException(reason);
        while (_sendResults.TryDequeue(out var pending))
        {
            pending.TrySetException(reason);
        }
    }

    /// <summary>Reads stream bytes (or one datagram, truncated): 0 at end of stream.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _readBusy, 1) != 0)
        {
            throw new InvalidOperationException("A read is already in progress on this stream.");
        }

        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (_localError is { } local && _closed != 0)
                {
                    throw local;
                }

                if (_current.Buffer is not null)
                {
                    if (buffer.IsEmpty)
                    {
                        return 0;
                    }

                    var n = Math.Min(buffer.Length, _current.Length - _currentOffset);
                    _current.Buffer.AsSpan(_currentOffset, n).CopyTo(buffer.Span);
                    _currentOffset += n;
                    if (_currentOffset == _current.Length || Protocol == TransportProtocol.Datagram)
                    {
                        _current.Return();
                        _current = default;
                        _currentOffset = 0;
                    }

                    return n;
                }

                if (_queue.Reader.TryRead(out var frame))
                {
                    _current = frame;
                    _currentOffset = 0;
                    continue;
                }

                if (!await _queue.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (_readError is { } error)
                    {
                        throw error;
                    }

                    ReadsClosed.TrySetResult();
                    return 0;
                }
            }
        }
        finally
        {
            Volatile.Write(ref _readBusy, 0);
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Sending

    /// <summary>Writes stream bytes: complete when they are in the channel to the daemon.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _writeBusy, 1) != 0)
        {
            throw new InvalidOperationException("A write is already in progress on this stream.");
        }

        try
        {
            ThrowIfCannotWrite();
            cancellationToken.ThrowIfCancellationRequested();
            do
            {
                // A write blocked on a full channel when the connection fails ends with the failure.
                if (_writeError is { } error)
                {
                    throw error;
                }

                var chunk = data[..Math.Min(data.Length, DaemonProtocol.MaxDataChunk)];
                await SendAsync(FrameType.Data, chunk, cancellationToken).ConfigureAwait(false);
                data = data[chunk.Length..];
            }
            while (!data.IsEmpty);

            if (_writeError is { } failed)
            {
                throw failed; // the connection failed while this write waited for the channel
            }
        }
        finally
        {
            Volatile.Write(ref _writeBusy, 0);
        }
    }

    private void ThrowIfCannotWrite()
    {
        if (_localError is { } local)
        {
            throw local;
        }

        if (_writeError is { } error)
        {
            throw error;
        }

        if (_writesCompleted)
        {
            throw new ServalException(ServalError.InvalidState, "Writes were completed on this stream.");
        }
    }

    /// <summary>Sends one datagram of a connected flow and waits for the daemon's result.</summary>
    public async ValueTask SendDatagramAsync(ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken)
    {
        if (datagram.Length > DaemonProtocol.MaxDataChunk)
        {
            throw new ServalException(ServalError.InvalidArgument, $"A datagram cannot be larger than {DaemonProtocol.MaxDataChunk} bytes.");
        }

        var result = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _datagramSend.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfCannotWrite();
            _sendResults.Enqueue(result);
            await SendAsync(FrameType.Data, datagram, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _datagramSend.Release();
        }

        if (_localError is { } local)
        {
            result.TrySetException(local);
        }

        await result.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask SendAsync(FrameType type, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        try
        {
            await _channel.SendAsync(type, payload, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // A frame may be half sent: the channel cannot carry more, so the connection is aborted.
            if (_channel.Socket.Connected)
            {
                Close(FrameType.Abort, new ServalException(ServalError.Aborted, "A write was cancelled in the middle of a frame; the connection was aborted."));
            }

            throw;
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            throw _localError ?? (_client.IsDetached ? _client.DetachedException() : _client.DaemonGoneException());
        }
    }

    /// <summary>Finishes the write side after the data already written.</summary>
    public void CompleteWrites()
    {
        if (_writesCompleted || _localError is not null)
        {
            return;
        }

        _writesCompleted = true;
        _ = Ignore(SendAsync(FrameType.CompleteWrites, default, CancellationToken.None));
    }

    private static async Task Ignore(ValueTask send)
    {
        try
        {
            await send.ConfigureAwait(false);
        }
        catch (Exception e) when (e is ServalException or ObjectDisposedException or OperationCanceledException)
        {
            // reported through the connection's state
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Closing

    /// <summary>Closes: gracefully (a reset instead if received data is left unread), or aborts.</summary>
    public async ValueTask CloseAsync(bool abort)
    {
        var unread = _current.Buffer is not null || _queue.Reader.Count > 0;
        var reason = abort
            ? new ServalException(ServalError.Aborted)
            : (Exception)new ObjectDisposedException(Protocol == TransportProtocol.Stream ? nameof(ServalStream) : nameof(ServalDatagramSocket));
        var type = abort || (unread && Protocol == TransportProtocol.Stream) ? FrameType.Abort : FrameType.Close;
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        _localError = reason;
        try
        {
            await _channel.SendAsync(type, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // the daemon or the host is gone: nothing to tell
        }

        // Fail what waits, then wait (bounded) until the daemon has closed its connection and the channel.
        Fail(reason);
        DrainQueue();
        await _channel.ShutdownAndWaitAsync(_receiveLoop).ConfigureAwait(false);
        Finish(reason);
    }

    private void DrainQueue()
    {
        while (_queue.Reader.TryRead(out var f))
        {
            f.Return();
        }
    }

    private void Close(FrameType type, Exception reason)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        _localError = reason;
        _ = type;
        Finish(reason);
    }

    private void Finish(Exception reason)
    {
        _client.Unregister(this);
        _channel.Dispose();
        Fail(reason);
        DrainQueue();
    }

    public void OnDetached(Exception reason)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        _localError = reason;
        Finish(reason);
    }

    // ------------------------------------------------------------------------------------------------------------
    // Session requests about this connection

    public async ValueTask<FlowInfo?> GetFlowInfoAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var reply = await _client.RequestAsync(new JsonObject { ["op"] = "flow.info", ["id"] = Id }, cancellationToken).ConfigureAwait(false);
        return DaemonProtocol.FromNode<FlowInfo>(reply["flow"]);
    }

    public async ValueTask MigrateAsync(int linkIndex, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await _client.RequestAsync(new JsonObject { ["op"] = "flow.migrate", ["id"] = Id, ["link"] = linkIndex }, cancellationToken).ConfigureAwait(false);
    }
}
