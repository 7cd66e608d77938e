using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Serval.Stack;

namespace Serval.Daemon.Protocol;

/// <summary>
/// One Unix stream connection between an application and servald carrying length-prefixed frames
/// (<see cref="DaemonProtocol.HeaderSize"/>-byte header, then the payload). Sends are serialized by a lock and go out
/// in one system call per frame (a pooled buffer); one reader at a time receives through a small buffer (so small
/// frames cost no extra system call; large payloads are received straight into their pooled buffer).
/// </summary>
public sealed class DaemonChannel : IDisposable
{
    private readonly Socket _socket;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private const int ReceiveBufferSize = 16 * 1024;
    private readonly byte[] _receiveBuffer = new byte[ReceiveBufferSize];
    private int _receiveStart;
    private int _receiveEnd;
    private bool _preamble;
    private int _disposed;

    /// <summary>A channel on a connected Unix stream socket; the application side sends the preamble before its first frame.</summary>
    public DaemonChannel(Socket socket, bool sendPreamble)
    {
        _socket = socket;
        _preamble = sendPreamble;
    }

    /// <summary>The underlying socket (the daemon asks it for the peer's credentials).</summary>
    public Socket Socket => _socket;

    /// <summary>Whether the channel has been disposed.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Connects to servald's socket at <paramref name="path"/>.</summary>
    /// <exception cref="ServalException">Nothing listens there (<see cref="ServalError.ConnectionRefused"/>).</exception>
    public static async Task<DaemonChannel> ConnectAsync(string path, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
            return new DaemonChannel(socket, sendPreamble: true);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new ServalException(
                ServalError.ConnectionRefused,
                $"No Serval daemon (servald) answers on {path}: {e.Message}. Start servald, or pass the path of its control socket.",
                e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Sending

    /// <summary>Sends a frame without payload.</summary>
    public ValueTask SendAsync(FrameType type, CancellationToken cancellationToken = default) => SendAsync(type, ReadOnlyMemory<byte>.Empty, cancellationToken);

    /// <summary>Sends a JSON request frame.</summary>
    public ValueTask SendJsonAsync(JsonObject message, CancellationToken cancellationToken = default) =>
        SendAsync(FrameType.Request, DaemonProtocol.Serialize(message), cancellationToken);

    /// <summary>Sends a JSON reply frame.</summary>
    public ValueTask SendReplyAsync(JsonObject message, CancellationToken cancellationToken = default) =>
        SendAsync(FrameType.Reply, DaemonProtocol.Serialize(message), cancellationToken);

    /// <summary>Sends one frame; a payload of at most <see cref="DaemonProtocol.MaxDataChunk"/> bytes goes in one system call.</summary>
    public async ValueTask SendAsync(FrameType type, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        var preamble = _preamble ? DaemonProtocol.Magic.Length : 0;
        var whole = preamble + DaemonProtocol.HeaderSize + payload.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(whole, preamble + DaemonProtocol.HeaderSize + DaemonProtocol.MaxDataChunk));
        try
        {
            var offset = 0;
            if (_preamble)
            {
                DaemonProtocol.Magic.CopyTo(buffer);
                offset = DaemonProtocol.Magic.Length;
                _preamble = false;
            }

            BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(offset), payload.Length + 1);
            buffer[offset + 4] = (byte)type;
            offset += DaemonProtocol.HeaderSize;
            if (payload.Length <= buffer.Length - offset)
            {
                payload.Span.CopyTo(buffer.AsSpan(offset));
                await SendAllAsync(buffer.AsMemory(0, offset + payload.Length), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await SendAllAsync(buffer.AsMemory(0, offset), cancellationToken).ConfigureAwait(false);
                await SendAllAsync(payload, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            _sendLock.Release();
        }
    }

    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            var n = await _socket.SendAsync(data, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            data = data[n..];
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Receiving

    /// <summary>
    /// Receives the next frame; <see cref="FrameType.None"/> when the peer closed the channel between frames. The
    /// payload is in a pooled buffer: <see cref="Frame.Return"/> it when done.
    /// </summary>
    /// <exception cref="InvalidDataException">A malformed frame, or the channel ended inside one.</exception>
    public async ValueTask<Frame> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        if (!await FillAsync(DaemonProtocol.HeaderSize, cancellationToken).ConfigureAwait(false))
        {
            return default;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(_receiveBuffer.AsSpan(_receiveStart));
        var type = (FrameType)_receiveBuffer[_receiveStart + 4];
        if (length < 1 || length > DaemonProtocol.MaxFrame)
        {
            throw new InvalidDataException($"Bad frame length {length} on the Serval daemon channel.");
        }

        _receiveStart += DaemonProtocol.HeaderSize;
        var payloadLength = length - 1;
        var payload = ArrayPool<byte>.Shared.Rent(Math.Max(payloadLength, 1));
        var copied = 0;
        while (copied < payloadLength)
        {
            if (_receiveStart == _receiveEnd)
            {
                if (payloadLength - copied >= ReceiveBufferSize / 2)
                {
                    var n = await _socket.ReceiveAsync(payload.AsMemory(copied, payloadLength - copied), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        ArrayPool<byte>.Shared.Return(payload);
                        throw new InvalidDataException("The Serval daemon channel ended inside a frame.");
                    }

                    copied += n;
                    continue;
                }

                if (!await FillAsync(1, cancellationToken).ConfigureAwait(false))
                {
                    ArrayPool<byte>.Shared.Return(payload);
                    throw new InvalidDataException("The Serval daemon channel ended inside a frame.");
                }
            }

            var take = Math.Min(_receiveEnd - _receiveStart, payloadLength - copied);
            _receiveBuffer.AsSpan(_receiveStart, take).CopyTo(payload.AsSpan(copied));
            _receiveStart += take;
            copied += take;
        }

        return new Frame(type, payload, payloadLength);
    }

    /// <summary>Receives the next frame, which must be a JSON reply; null when the channel closed first.</summary>
    public async ValueTask<JsonObject?> ReceiveReplyAsync(CancellationToken cancellationToken = default)
    {
        var frame = await ReceiveAsync(cancellationToken).ConfigureAwait(false);
        if (frame.Type == FrameType.None)
        {
            return null;
        }

        try
        {
            if (frame.Type is not (FrameType.Reply or FrameType.Request))
            {
                throw new InvalidDataException($"Expected a JSON frame on the Serval daemon channel, got {frame.Type}.");
            }

            return DaemonProtocol.Parse(frame.Span);
        }
        finally
        {
            frame.Return();
        }
    }

    /// <summary>Reads the 4-byte preamble an application sends first (daemon side).</summary>
    public async ValueTask<bool> ReceivePreambleAsync(CancellationToken cancellationToken)
    {
        if (!await FillAsync(DaemonProtocol.Magic.Length, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        var ok = _receiveBuffer.AsSpan(_receiveStart, DaemonProtocol.Magic.Length).SequenceEqual(DaemonProtocol.Magic);
        _receiveStart += DaemonProtocol.Magic.Length;
        return ok;
    }

    /// <summary>
    /// Waits until the peer closes its side (true) or sends something (false), without consuming anything: a watch
    /// for a peer that goes away while an operation is pending.
    /// </summary>
    public async Task<bool> WaitForPeerActivityAsync(CancellationToken cancellationToken)
    {
        if (_receiveStart < _receiveEnd)
        {
            return false;
        }

        var one = new byte[1];
        try
        {
            return await _socket.ReceiveAsync(one, SocketFlags.Peek, cancellationToken).ConfigureAwait(false) == 0;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
    }

    private async ValueTask<bool> FillAsync(int count, CancellationToken cancellationToken)
    {
        if (_receiveEnd - _receiveStart >= count)
        {
            return true;
        }

        if (_receiveStart > 0)
        {
            var have = _receiveEnd - _receiveStart;
            Buffer.BlockCopy(_receiveBuffer, _receiveStart, _receiveBuffer, 0, have);
            _receiveStart = 0;
            _receiveEnd = have;
        }

        while (_receiveEnd < count)
        {
            var n = await _socket.ReceiveAsync(_receiveBuffer.AsMemory(_receiveEnd), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                if (_receiveEnd == 0)
                {
                    return false;
                }

                throw new InvalidDataException("The Serval daemon channel ended inside a frame.");
            }

            _receiveEnd += n;
        }

        return true;
    }

    /// <summary>
    /// Closes our sending side (the peer reads the end of the channel, closes its object and then the channel) and
    /// waits, bounded, until <paramref name="peerDone"/> (a reader of this channel that ends with the channel) completes.
    /// </summary>
    public async Task ShutdownAndWaitAsync(Task peerDone)
    {
        try
        {
            await _sendLock.WaitAsync(CloseWait).ConfigureAwait(false);
            try
            {
                _socket.Shutdown(SocketShutdown.Send);
            }
            finally
            {
                _sendLock.Release();
            }

            await peerDone.WaitAsync(CloseWait).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or TimeoutException)
        {
            // gone already, or the daemon does not answer: closing the socket below is all that is left
        }

        Dispose();
    }

    /// <summary>How long a close waits for the daemon to confirm.</summary>
    private static readonly TimeSpan CloseWait = TimeSpan.FromSeconds(5);

    /// <summary>Ends the channel: the peer sees the connection close.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        _socket.Dispose();
    }

    /// <summary>One received frame; its payload is a pooled buffer.</summary>
    /// <param name="Type">The frame's type (<see cref="FrameType.None"/>: the channel closed).</param>
    /// <param name="Buffer">The pooled buffer holding the payload, or null.</param>
    /// <param name="Length">The payload's length in <paramref name="Buffer"/>.</param>
    public readonly record struct Frame(FrameType Type, byte[]? Buffer, int Length)
    {
        /// <summary>The payload.</summary>
        public ReadOnlySpan<byte> Span => Buffer.AsSpan(0, Length);

        /// <summary>The payload.</summary>
        public ReadOnlyMemory<byte> Memory => Buffer.AsMemory(0, Length);

        /// <summary>Gives the payload's buffer back to the pool; the frame must not be used afterwards.</summary>
        public void Return()
        {
            if (Buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(Buffer);
            }
        }
    }
}
