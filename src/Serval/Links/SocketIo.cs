using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Serval.Native;
using Serval.Runtime;
using Serval.Wire;

namespace Serval.Links;

/// <summary>
/// Datagram I/O on one socket for the socket links (UDP and raw IP): a receive thread that blocks in <c>recvmmsg</c>
/// (up to <see cref="BatchSize"/> datagrams per call) and a send queue flushed with <c>sendmmsg</c> on 64-bit Linux;
/// elsewhere, or when <c>batching</c> is off or the calls are unavailable, the managed
/// <see cref="Socket.ReceiveFrom(Span{byte}, SocketFlags, SocketAddress)"/> and
/// <see cref="Socket.SendTo(ReadOnlySpan{byte}, SocketFlags, SocketAddress)"/> (no allocation per packet either way).
/// </summary>
internal sealed unsafe class SocketIo : IDisposable
{
    public const int BatchSize = 64;
    private const int ReceivePollMilliseconds = 100;

    private readonly Socket _socket;
    private readonly string _name;
    private readonly int _slotSize;
    private readonly LinkCounters _counters;
    private readonly ISocketIoHandler _handler;
    private readonly Dictionary<LinkAddress, SocketAddress> _addressCache = [];
    private readonly byte[] _managedReceiveBuffer;
    private Thread? _receiveThread;
    private volatile bool _stopping;
    private bool _disposed;

    // Native batch state (null when not batching).
    private readonly Batch? _send;
    private readonly Batch? _receive;
    private int _sendCount;

    public SocketIo(Socket socket, string name, int slotSize, bool batching, LinkCounters counters, ISocketIoHandler handler)
    {
        _socket = socket;
        _name = name;
        _slotSize = slotSize;
        _counters = counters;
        _handler = handler;
        _managedReceiveBuffer = new byte[slotSize];
        if (batching && LinuxSockets.IsPlatformSupported && ProbeNative(socket))
        {
            _send = new Batch(slotSize);
            _receive = new Batch(slotSize);
        }
    }

    /// <summary>Whether <c>sendmmsg</c>/<c>recvmmsg</c> are in use.</summary>
    public bool Batching => _send is not null;

    public ILogger Logger { get; set; } = NullLogger.Instance;

    /// <summary>Called (engine thread) when a send fails because the network or the local address went away.</summary>
    public Action? NetworkUnavailable { get; set; }

    private static bool ProbeNative(Socket socket)
    {
        try
        {
            // A zero-length batch exercises symbol resolution without touching the socket's queue.
            _ = LinuxSockets.SendMmsg(socket.Handle, null, 0, 0);
            return LinuxSockets.SetReceiveTimeout(socket.Handle, ReceivePollMilliseconds);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or MarshalDirectiveException)
        {
            return false;
        }
    }

    public void StartReceiving()
    {
        if (_send is null)
        {
            _socket.ReceiveTimeout = ReceivePollMilliseconds;
        }

        _receiveThread = new Thread(ReceiveLoop) { IsBackground = true, Name = $"serval rx {_name}" };
        _receiveThread.Start();
    }

    // ------------------------------------------------------------------------------------------------------------
    // Sending (engine thread)

    public void Send(LinkAddress destination, ReadOnlySpan<byte> packet)
    {
        if (_disposed)
        {
            return;
        }

        if (_send is { } batch && packet.Length <= _slotSize)
        {
            var i = _sendCount;
            var nameLength = SockAddr.Write(destination, batch.NameSpan(i));
            if (nameLength == 0)
            {
                _counters.SendError();
                return;
            }

            packet.CopyTo(batch.SlotSpan(i));
            batch.Messages[i].Header.NameLength = (uint)nameLength;
            batch.IoVecs[i].Length = (nuint)packet.Length;
            _sendCount = i + 1;
            if (_sendCount == BatchSize)
            {
                Flush();
            }

            return;
        }

        SendManaged(destination, packet);
    }

    private void SendManaged(LinkAddress destination, ReadOnlySpan<byte> packet)
    {
        if (!_addressCache.TryGetValue(destination, out var address))
        {
            if (_addressCache.Count >= 4096)
            {
                _addressCache.Clear();
            }

            address = destination.ToEndPoint().Serialize();
            _addressCache[destination] = address;
        }

        try
        {
            _counters.SystemCall();
            _socket.SendTo(packet, SocketFlags.None, address);
            _counters.Sent(packet.Length);
        }
        catch (SocketException e)
        {
            _counters.SendError();
            HostLog.LinkSendFailed(Logger, _name, destination, e.SocketErrorCode);
            if (e.SocketErrorCode is SocketError.NetworkDown or SocketError.NetworkUnreachable or SocketError.AddressNotAvailable)
            {
                NetworkUnavailable?.Invoke();
            }
        }
        catch (ObjectDisposedException)
        {
            _counters.SendError();
        }
    }

    public void Flush()
    {
        if (_send is not { } batch || _sendCount == 0 || _disposed)
        {
            return;
        }

        var start = 0;
        var fd = _socket.Handle;
        while (start < _sendCount)
        {
            _counters.SystemCall();
            var n = LinuxSockets.SendMmsg(fd, batch.Messages + start, (uint)(_sendCount - start), 0);
            if (n > 0)
            {
                for (var i = start; i < start + n; i++)
                {
                    _counters.Sent((int)batch.IoVecs[i].Length);
                }

                start += n;
                continue;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno == LinuxSockets.EIntr)
            {
                continue;
            }

            // The first message failed (ICMP unreachable reported late, no buffer, no route): drop it, go on.
            _counters.SendError();
            var failed = SockAddr.Read(batch.NameSpan(start));
            HostLog.LinkSendFailed(Logger, _name, failed, (SocketError)errno);
            if (errno is LinuxSockets.ENetDown or LinuxSockets.ENetUnreach or LinuxSockets.EAddrNotAvail)
            {
                NetworkUnavailable?.Invoke();
            }

            start++;
        }

        _sendCount = 0;
    }

    // ------------------------------------------------------------------------------------------------------------
    // Receiving (own thread)

    private void ReceiveLoop()
    {
        try
        {
            if (_receive is { } batch)
            {
                ReceiveNative(batch);
            }
            else
            {
                ReceiveManaged();
            }
        }
        catch (Exception e) when (_stopping && e is ObjectDisposedException or SocketException)
        {
            // Closed while receiving: the normal end.
        }
        catch (Exception e)
        {
            HostLog.LinkReceiveFailed(Logger, e, _name);
        }
    }

    private void ReceiveNative(Batch batch)
    {
        var added = false;
        _socket.SafeHandle.DangerousAddRef(ref added);
        try
        {
            var fd = _socket.SafeHandle.DangerousGetHandle();
            var errors = 0;
            while (!_stopping)
            {
                for (var i = 0; i < BatchSize; i++)
                {
                    batch.Messages[i].Header.NameLength = SockAddr.MaxSize;
                    batch.Messages[i].Header.Flags = 0;
                    batch.IoVecs[i].Length = (nuint)_slotSize;
                }

                var n = LinuxSockets.RecvMmsg(fd, batch.Messages, BatchSize, LinuxSockets.MsgWaitForOne, null);
                _counters.SystemCall();
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno is LinuxSockets.EAgain or LinuxSockets.EIntr or LinuxSockets.EConnRefused)
                    {
                        continue;
                    }

                    if (_stopping)
                    {
                        return;
                    }

                    HostLog.LinkReceiveError(Logger, _name, (SocketError)errno);
                    if (++errors > 100)
                    {
                        return;
                    }

                    Thread.Sleep(10);
                    continue;
                }

                errors = 0;
                for (var i = 0; i < n; i++)
                {
                    var length = (int)batch.Messages[i].Length;
                    if ((batch.Messages[i].Header.Flags & LinuxSockets.MsgTrunc) != 0 || length > _slotSize)
                    {
                        _counters.Dropped();
                        continue;
                    }

                    var source = SockAddr.Read(batch.NameSpan(i));
                    _handler.OnDatagram(source, batch.SlotSpan(i)[..length]);
                }
            }
        }
        finally
        {
            if (added)
            {
                _socket.SafeHandle.DangerousRelease();
            }
        }
    }

    private void ReceiveManaged()
    {
        var address = new SocketAddress(_socket.AddressFamily);
        var buffer = _managedReceiveBuffer;
        while (!_stopping)
        {
            int n;
            try
            {
                _counters.SystemCall();
                n = _socket.ReceiveFrom(buffer, SocketFlags.None, address);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock or SocketError.ConnectionReset or SocketError.Interrupted)
            {
                continue;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.MessageSize)
            {
                _counters.Dropped();
                continue;
            }

            _handler.OnDatagram(SockAddr.Read(address), buffer.AsSpan(0, n));
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _stopping = true;
        _receiveThread?.Join(TimeSpan.FromSeconds(2));
        _socket.Dispose();
        if (_receiveThread is null || !_receiveThread.IsAlive)
        {
            _send?.Dispose();
            _receive?.Dispose();
        }
    }

    /// <summary>Native memory for one batch: messages, iovecs, sockaddrs and packet slots.</summary>
    private sealed class Batch : IDisposable
    {
        private readonly int _slotSize;

        public Batch(int slotSize)
        {
            _slotSize = slotSize;
            Messages = (LinuxSockets.MMsgHdr*)NativeMemory.AllocZeroed(BatchSize, (nuint)sizeof(LinuxSockets.MMsgHdr));
            IoVecs = (LinuxSockets.IoVec*)NativeMemory.AllocZeroed(BatchSize, (nuint)sizeof(LinuxSockets.IoVec));
            Names = (byte*)NativeMemory.AllocZeroed(BatchSize, SockAddr.MaxSize + 4);
            Slots = (byte*)NativeMemory.AllocZeroed(BatchSize, (nuint)slotSize);
            for (var i = 0; i < BatchSize; i++)
            {
                IoVecs[i].Base = Slots + ((long)i * slotSize);
                IoVecs[i].Length = (nuint)slotSize;
                Messages[i].Header.Iov = IoVecs + i;
                Messages[i].Header.IovLength = 1;
                Messages[i].Header.Name = Names + (i * (SockAddr.MaxSize + 4));
                Messages[i].Header.NameLength = SockAddr.MaxSize;
            }
        }

        public LinuxSockets.MMsgHdr* Messages { get; private set; }

        public LinuxSockets.IoVec* IoVecs { get; private set; }

        public byte* Names { get; private set; }

        public byte* Slots { get; private set; }

        public Span<byte> NameSpan(int i) => new(Names + (i * (SockAddr.MaxSize + 4)), SockAddr.MaxSize);

        public Span<byte> SlotSpan(int i) => new(Slots + ((long)i * _slotSize), _slotSize);

        public void Dispose()
        {
            NativeMemory.Free(Messages);
            NativeMemory.Free(IoVecs);
            NativeMemory.Free(Names);
            NativeMemory.Free(Slots);
            Messages = null;
            IoVecs = null;
            Names = null;
            Slots = null;
        }
    }
}
