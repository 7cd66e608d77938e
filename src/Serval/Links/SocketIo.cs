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
/// With <c>segmentationOffload</c> (UDP only) consecutive queued datagrams of one size to one destination leave as one
/// GSO send (<c>UDP_SEGMENT</c>), and the receive side asks the kernel to coalesce (<c>UDP_GRO</c>) and splits the
/// coalesced buffers back into datagrams. When the kernel refuses either, the link falls back permanently and counts it.
/// Raw links that write their own IP header queue it in front of the packet (<see cref="Send(LinkAddress, ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>),
/// still without allocation; with <c>receiveHopLimit</c> (raw IPv6) the batching receive path asks for
/// <c>IPV6_HOPLIMIT</c> control messages and reports each datagram's hop limit.
/// </summary>
internal sealed unsafe class SocketIo : IDisposable
{
    public const int BatchSize = 64;

    /// <summary>Datagrams queued before a send flushes by itself (GSO sends carry up to 64 of them each).</summary>
    public const int SendQueueSize = 256;

    /// <summary>Receive slots per <c>recvmmsg</c> when GRO is on (each slot holds a 64 KiB coalesced buffer).</summary>
    public const int GroBatchSize = 32;

    private const int GroSlotSize = 65_536;
    private const int ControlSize = 64;
    private const int ReceivePollMilliseconds = 100;

    private readonly Socket _socket;
    private readonly string _name;
    private readonly int _slotSize;
    private readonly LinkCounters _counters;
    private readonly ISocketIoHandler _handler;
    private readonly Dictionary<LinkAddress, SocketAddress> _addressCache = [];
    private readonly byte[] _managedReceiveBuffer;
    private byte[]? _managedSendBuffer;
    private Thread? _receiveThread;
    private volatile bool _stopping;
    private bool _disposed;

    // Native batch state (null when not batching).
    private readonly SendQueue? _send;
    private readonly ReceiveBatch? _receive;
    private bool _gso;
    private bool _hopLimitControl;

    public SocketIo(Socket socket, string name, int slotSize, bool batching, LinkCounters counters, ISocketIoHandler handler, bool segmentationOffload = false, bool receiveHopLimit = false)
    {
        _socket = socket;
        _name = name;
        _slotSize = slotSize;
        _counters = counters;
        _handler = handler;
        _managedReceiveBuffer = new byte[slotSize];
        if (batching && LinuxSockets.IsPlatformSupported && ProbeNative(socket))
        {
            _send = new SendQueue(slotSize);
            var gro = false;
            if (segmentationOffload)
            {
                // UDP_SEGMENT 0 as a socket option is a no-op that only kernels with UDP GSO accept.
                _gso = LinuxSockets.SetIntOption(socket.Handle, LinuxSockets.SolUdp, LinuxSockets.UdpSegment, 0, out _);
                gro = LinuxSockets.SetIntOption(socket.Handle, LinuxSockets.SolUdp, LinuxSockets.UdpGro, 1, out _);
                if (!_gso)
                {
                    counters.OffloadFallback();
                }

                if (!gro)
                {
                    counters.OffloadFallback();
                }
            }

            _receive = gro ? new ReceiveBatch(GroBatchSize, GroSlotSize) : new ReceiveBatch(BatchSize, slotSize);
            _hopLimitControl = receiveHopLimit
                && LinuxSockets.SetIntOption(socket.Handle, LinuxSockets.SolIpv6, LinuxSockets.Ipv6RecvHopLimit, 1, out _);
        }
    }

    /// <summary>Whether <c>sendmmsg</c>/<c>recvmmsg</c> are in use.</summary>
    public bool Batching => _send is not null;

    /// <summary>Whether sends use UDP GSO (false after a fallback).</summary>
    public bool SegmentationOffload => _gso;

    /// <summary>Whether receives ask for UDP GRO.</summary>
    public bool ReceiveOffload => _receive is { SlotSize: GroSlotSize } && _slotSize < GroSlotSize;

    /// <summary>Whether received datagrams come with the hop limit (<c>IPV6_HOPLIMIT</c> control messages).</summary>
    public bool ReceivesHopLimit => _hopLimitControl;

    public ILogger Logger { get; set; } = NullLogger.Instance;

    /// <summary>Called (engine thread) when a send fails because the network or the local address went away.</summary>
    public Action? NetworkUnavailable { get; set; }

    /// <summary>Run first on the receive thread (the host applies the receive threads' nice value there).</summary>
    public Action? ReceiveThreadStart { get; set; }

    /// <summary>The socket's file descriptor.</summary>
    public nint Handle => _socket.Handle;

    /// <summary>
    /// Sets the socket's kernel buffers (0 keeps the kernel's default). The FORCE variants pass net.core.rmem_max and
    /// wmem_max (which default to about 200 KiB) when the process has CAP_NET_ADMIN; otherwise the plain options apply,
    /// capped by the kernel.
    /// </summary>
    public static void SetBufferSizes(Socket socket, int receive, int send)
    {
        if (receive > 0
            && !(LinuxSockets.IsPlatformSupported && LinuxSockets.SetIntOption(socket.Handle, LinuxSockets.SolSocket, LinuxSockets.SoRcvBufForce, receive, out _)))
        {
            socket.ReceiveBufferSize = receive;
        }

        if (send > 0
            && !(LinuxSockets.IsPlatformSupported && LinuxSockets.SetIntOption(socket.Handle, LinuxSockets.SolSocket, LinuxSockets.SoSndBufForce, send, out _)))
        {
            socket.SendBufferSize = send;
        }
    }

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

    public void Send(LinkAddress destination, ReadOnlySpan<byte> packet) => Send(destination, default, packet);

    /// <summary>Sends <paramref name="header"/> followed by <paramref name="packet"/> as one datagram.</summary>
    public void Send(LinkAddress destination, ReadOnlySpan<byte> header, ReadOnlySpan<byte> packet)
    {
        if (_disposed)
        {
            return;
        }

        if (_send is { } queue && header.Length + packet.Length <= _slotSize)
        {
            if (destination.IsNone)
            {
                _counters.SendError();
                return;
            }

            queue.Add(destination, header, packet);
            if (queue.Count == SendQueueSize)
            {
                Flush();
            }

            return;
        }

        if (header.IsEmpty)
        {
            SendManaged(destination, packet);
            return;
        }

        // One buffer, grown to the largest datagram seen and reused (the engine thread is the only sender).
        var length = header.Length + packet.Length;
        if (_managedSendBuffer is null || _managedSendBuffer.Length < length)
        {
            _managedSendBuffer = new byte[Math.Max(length, _slotSize)];
        }

        header.CopyTo(_managedSendBuffer);
        packet.CopyTo(_managedSendBuffer.AsSpan(header.Length));
        SendManaged(destination, _managedSendBuffer.AsSpan(0, length));
    }

    /// <summary>
    /// The send queue's memory for the next datagram of at most <paramref name="maxLength"/> bytes (written in place,
    /// then <see cref="CommitSend"/>), or empty when this socket does not batch or the datagram would not fit a slot.
    /// </summary>
    public Span<byte> GetSendSlot(int maxLength) =>
        _send is { } queue && !_disposed && maxLength <= _slotSize ? queue.NextSlot(_slotSize) : default;

    /// <summary>Queues the first <paramref name="length"/> bytes of the slot <see cref="GetSendSlot"/> returned.</summary>
    public void CommitSend(LinkAddress destination, int length)
    {
        if (_send is not { } queue || _disposed || (uint)length > (uint)_slotSize)
        {
            _counters.SendError();
            return;
        }

        if (destination.IsNone)
        {
            _counters.SendError();
            return;
        }

        queue.Commit(destination, length);
        if (queue.Count == SendQueueSize)
        {
            Flush();
        }
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
        if (_send is not { } queue || queue.Count == 0 || _disposed)
        {
            return;
        }

        var fd = _socket.Handle;
        var first = 0; // first queued datagram not yet sent or dropped
        while (first < queue.Count)
        {
            // Group the rest into messages (one GSO send per run when offload is on), up to BatchSize messages.
            var messages = queue.BuildMessages(first, _gso);
            var m = 0;
            while (m < messages)
            {
                _counters.SystemCall();
                var n = LinuxSockets.SendMmsg(fd, queue.Messages + m, (uint)(messages - m), 0);
                if (n > 0)
                {
                    long bytes = 0;
                    var packets = 0;
                    for (var i = m; i < m + n; i++)
                    {
                        var count = queue.MessageCounts[i];
                        packets += count;
                        bytes += (long)queue.IoVecs[i].Length;
                        if (count > 1)
                        {
                            _counters.OffloadSend();
                        }
                    }

                    _counters.Sent(packets, bytes);
                    first += packets;
                    m += n;
                    continue;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno == LinuxSockets.EIntr)
                {
                    continue;
                }

                if (queue.MessageCounts[m] > 1 && errno is LinuxSockets.EIo or LinuxSockets.EInval or LinuxSockets.EOpNotSupp or LinuxSockets.ENoProtoOpt)
                {
                    // The kernel or the route cannot segment (no checksum offload, path MTU below a segment): stop
                    // using GSO for good and send the rest one datagram per message.
                    _gso = false;
                    _counters.OffloadFallback();
                    HostLog.LinkOffloadDisabled(Logger, _name, (SocketError)errno);
                    break;
                }

                // The message failed (ICMP unreachable reported late, no buffer, no route): drop it, go on.
                var dropped = queue.MessageCounts[m];
                for (var i = 0; i < dropped; i++)
                {
                    _counters.SendError();
                }

                var failed = SockAddr.Read(queue.NameSpan(m));
                HostLog.LinkSendFailed(Logger, _name, failed, (SocketError)errno);
                first += dropped;
                if (errno is LinuxSockets.ENetDown or LinuxSockets.ENetUnreach or LinuxSockets.EAddrNotAvail)
                {
                    NetworkUnavailable?.Invoke();
                }

                m++;
            }
        }

        queue.Clear();
    }

    // ------------------------------------------------------------------------------------------------------------
    // Receiving (own thread)

    private void ReceiveLoop()
    {
        try
        {
            ReceiveThreadStart?.Invoke();
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

    private void ReceiveNative(ReceiveBatch batch)
    {
        var added = false;
        _socket.SafeHandle.DangerousAddRef(ref added);
        try
        {
            var fd = _socket.SafeHandle.DangerousGetHandle();
            var errors = 0;
            var count = batch.Count;
            var slotSize = batch.SlotSize;
            var gro = slotSize == GroSlotSize && _slotSize < GroSlotSize;
            while (!_stopping)
            {
                for (var i = 0; i < count; i++)
                {
                    ref var header = ref batch.Messages[i].Header;
                    header.NameLength = SockAddr.MaxSize;
                    header.Flags = 0;
                    header.ControlLength = gro || _hopLimitControl ? (nuint)ControlSize : 0;
                    batch.IoVecs[i].Length = (nuint)slotSize;
                }

                var n = LinuxSockets.RecvMmsg(fd, batch.Messages, (uint)count, LinuxSockets.MsgWaitForOne, null);
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
                if (_stopping)
                {
                    return; // woken by Dispose's shutdown (an empty message, not a datagram)
                }

                for (var i = 0; i < n; i++)
                {
                    var length = (int)batch.Messages[i].Length;
                    if ((batch.Messages[i].Header.Flags & LinuxSockets.MsgTrunc) != 0 || length > slotSize)
                    {
                        _counters.Dropped();
                        continue;
                    }

                    var source = SockAddr.Read(batch.NameSpan(i));
                    var data = batch.SlotSpan(i)[..length];
                    var segment = gro ? batch.GroSegmentSize(i) : 0;
                    if (segment > 0 && segment < length)
                    {
                        _counters.CoalescedReceive();
                        UdpSegmentation.Split(data, segment, (this, source), static (d, s) => s.Item1.Deliver(s.source, d));
                    }
                    else if (length <= _slotSize)
                    {
                        var hopLimit = _hopLimitControl ? batch.ControlInt(i, LinuxSockets.SolIpv6, LinuxSockets.Ipv6HopLimit) ?? IPHopLimit.Unknown : IPHopLimit.Unknown;
                        _handler.OnDatagram(source, data, hopLimit);
                    }
                    else
                    {
                        _counters.Dropped();
                    }
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

    private void Deliver(LinkAddress source, ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length <= _slotSize)
        {
            _handler.OnDatagram(source, datagram, IPHopLimit.Unknown);
        }
        else
        {
            _counters.Dropped();
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

            if (n == 0 && _stopping)
            {
                return; // woken by Dispose's shutdown
            }

            // The managed receive has no control messages: the hop limit is unknown on this path.
            _handler.OnDatagram(SockAddr.Read(address), buffer.AsSpan(0, n), IPHopLimit.Unknown);
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
        try
        {
            // Wakes a receive blocked in the kernel at once (Linux, even on an unconnected socket, which reports
            // ENOTCONN) instead of at its 100 ms time-out: a link retired with its address frees its port for the
            // next link on that address without waiting.
            _socket.Shutdown(SocketShutdown.Receive);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        _receiveThread?.Join(TimeSpan.FromSeconds(2));
        _socket.Dispose();
        if (_receiveThread is null || !_receiveThread.IsAlive)
        {
            _send?.Dispose();
            _receive?.Dispose();
        }
    }

    /// <summary>
    /// Native memory for queued sends: the datagrams back to back in one buffer (so that a run of them is one iovec),
    /// and up to <see cref="BatchSize"/> messages with their sockaddrs and UDP_SEGMENT control messages.
    /// </summary>
    private sealed class SendQueue : IDisposable
    {
        private const int NameStride = SockAddr.MaxSize + 4;
        private const int SegmentControlSize = 24; // CMSG_SPACE(sizeof(ushort))
        private readonly int[] _lengths = new int[SendQueueSize];
        private readonly int[] _offsets = new int[SendQueueSize];
        private readonly LinkAddress[] _destinations = new LinkAddress[SendQueueSize];
        private int _used;

        public SendQueue(int slotSize)
        {
            Data = (byte*)NativeMemory.AllocZeroed(SendQueueSize, (nuint)slotSize);
            Messages = (LinuxSockets.MMsgHdr*)NativeMemory.AllocZeroed(BatchSize, (nuint)sizeof(LinuxSockets.MMsgHdr));
            IoVecs = (LinuxSockets.IoVec*)NativeMemory.AllocZeroed(BatchSize, (nuint)sizeof(LinuxSockets.IoVec));
            Names = (byte*)NativeMemory.AllocZeroed(BatchSize, NameStride);
            Controls = (byte*)NativeMemory.AllocZeroed(BatchSize, SegmentControlSize);
            MessageCounts = new int[BatchSize];
            for (var i = 0; i < BatchSize; i++)
            {
                Messages[i].Header.Iov = IoVecs + i;
                Messages[i].Header.IovLength = 1;
                Messages[i].Header.Name = Names + (i * NameStride);
            }
        }

        public int Count { get; private set; }

        public byte* Data { get; private set; }

        public LinuxSockets.MMsgHdr* Messages { get; private set; }

        public LinuxSockets.IoVec* IoVecs { get; private set; }

        public byte* Names { get; private set; }

        public byte* Controls { get; private set; }

        /// <summary>Datagrams in each built message.</summary>
        public int[] MessageCounts { get; }

        public Span<byte> NameSpan(int i) => new(Names + (i * NameStride), SockAddr.MaxSize);

        public void Add(LinkAddress destination, ReadOnlySpan<byte> header, ReadOnlySpan<byte> packet)
        {
            var i = Count;
            var length = header.Length + packet.Length;
            header.CopyTo(new Span<byte>(Data + _used, header.Length));
            packet.CopyTo(new Span<byte>(Data + _used + header.Length, packet.Length));
            _offsets[i] = _used;
            _lengths[i] = length;
            _destinations[i] = destination;
            _used += length;
            Count = i + 1;
        }

        /// <summary>Memory for the next datagram (at most a slot), right after the queued ones.</summary>
        public Span<byte> NextSlot(int slotSize) => new(Data + _used, slotSize);

        /// <summary>Queues the <paramref name="length"/> bytes written at <see cref="NextSlot"/>.</summary>
        public void Commit(LinkAddress destination, int length)
        {
            var i = Count;
            _offsets[i] = _used;
            _lengths[i] = length;
            _destinations[i] = destination;
            _used += length;
            Count = i + 1;
        }

        public void Clear()
        {
            Count = 0;
            _used = 0;
        }

        /// <summary>Builds messages for the datagrams from <paramref name="first"/> on; returns how many messages.</summary>
        public int BuildMessages(int first, bool gso)
        {
            var lengths = new ReadOnlySpan<int>(_lengths, 0, Count);
            var destinations = new ReadOnlySpan<LinkAddress>(_destinations, 0, Count);
            var m = 0;
            var i = first;
            while (i < Count && m < BatchSize)
            {
                var run = gso ? UdpSegmentation.RunLength(lengths, destinations, i) : 1;
                var bytes = 0;
                for (var k = i; k < i + run; k++)
                {
                    bytes += _lengths[k];
                }

                ref var header = ref Messages[m].Header;
                header.NameLength = (uint)SockAddr.Write(destinations[i], NameSpan(m));
                IoVecs[m].Base = Data + _offsets[i];
                IoVecs[m].Length = (nuint)bytes;
                MessageCounts[m] = run;
                if (run > 1)
                {
                    var control = Controls + (m * SegmentControlSize);
                    *(nuint*)control = LinuxSockets.CmsgHeaderSize + sizeof(ushort);
                    *(int*)(control + 8) = LinuxSockets.SolUdp;
                    *(int*)(control + 12) = LinuxSockets.UdpSegment;
                    *(ushort*)(control + LinuxSockets.CmsgHeaderSize) = (ushort)_lengths[i];
                    header.Control = control;
                    header.ControlLength = SegmentControlSize;
                }
                else
                {
                    header.Control = null;
                    header.ControlLength = 0;
                }

                i += run;
                m++;
            }

            return m;
        }

        public void Dispose()
        {
            NativeMemory.Free(Data);
            NativeMemory.Free(Messages);
            NativeMemory.Free(IoVecs);
            NativeMemory.Free(Names);
            NativeMemory.Free(Controls);
            Data = null;
            Messages = null;
            IoVecs = null;
            Names = null;
            Controls = null;
        }
    }

    /// <summary>Native memory for one receive batch: messages, iovecs, sockaddrs, control buffers and packet slots.</summary>
    private sealed class ReceiveBatch : IDisposable
    {
        private const int NameStride = SockAddr.MaxSize + 4;

        public ReceiveBatch(int count, int slotSize)
        {
            Count = count;
            SlotSize = slotSize;
            Messages = (LinuxSockets.MMsgHdr*)NativeMemory.AllocZeroed((nuint)count, (nuint)sizeof(LinuxSockets.MMsgHdr));
            IoVecs = (LinuxSockets.IoVec*)NativeMemory.AllocZeroed((nuint)count, (nuint)sizeof(LinuxSockets.IoVec));
            Names = (byte*)NativeMemory.AllocZeroed((nuint)count, NameStride);
            Controls = (byte*)NativeMemory.AllocZeroed((nuint)count, ControlSize);
            Slots = (byte*)NativeMemory.AllocZeroed((nuint)count, (nuint)slotSize);
            for (var i = 0; i < count; i++)
            {
                IoVecs[i].Base = Slots + ((long)i * slotSize);
                IoVecs[i].Length = (nuint)slotSize;
                Messages[i].Header.Iov = IoVecs + i;
                Messages[i].Header.IovLength = 1;
                Messages[i].Header.Name = Names + (i * NameStride);
                Messages[i].Header.NameLength = SockAddr.MaxSize;
                Messages[i].Header.Control = Controls + (i * ControlSize);
            }
        }

        public int Count { get; }

        public int SlotSize { get; }

        public LinuxSockets.MMsgHdr* Messages { get; private set; }

        public LinuxSockets.IoVec* IoVecs { get; private set; }

        public byte* Names { get; private set; }

        public byte* Controls { get; private set; }

        public byte* Slots { get; private set; }

        public Span<byte> NameSpan(int i) => new(Names + (i * NameStride), SockAddr.MaxSize);

        public Span<byte> SlotSpan(int i) => new(Slots + ((long)i * SlotSize), SlotSize);

        /// <summary>The UDP_GRO segment size the kernel reported for message <paramref name="i"/>, or 0.</summary>
        public int GroSegmentSize(int i) => ControlInt(i, LinuxSockets.SolUdp, LinuxSockets.UdpGro) ?? 0;

        /// <summary>The int carried by message <paramref name="i"/>'s control message of that level and type, if any.</summary>
        public int? ControlInt(int i, int level, int type)
        {
            ref var header = ref Messages[i].Header;
            var length = (int)header.ControlLength;
            var control = (byte*)header.Control;
            var offset = 0;
            while (offset + LinuxSockets.CmsgHeaderSize <= length)
            {
                var cmsgLength = (int)*(nuint*)(control + offset);
                if (cmsgLength < LinuxSockets.CmsgHeaderSize || offset + cmsgLength > length)
                {
                    return null;
                }

                if (*(int*)(control + offset + 8) == level && *(int*)(control + offset + 12) == type
                    && cmsgLength >= LinuxSockets.CmsgHeaderSize + sizeof(int))
                {
                    return *(int*)(control + offset + LinuxSockets.CmsgHeaderSize);
                }

                offset += LinuxSockets.CmsgAlign(cmsgLength);
            }

            return null;
        }

        public void Dispose()
        {
            NativeMemory.Free(Messages);
            NativeMemory.Free(IoVecs);
            NativeMemory.Free(Names);
            NativeMemory.Free(Controls);
            NativeMemory.Free(Slots);
            Messages = null;
            IoVecs = null;
            Names = null;
            Controls = null;
            Slots = null;
        }
    }
}
