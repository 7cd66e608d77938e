using System.Net;
using System.Net.Sockets;
using Serval.Native;
using Serval.Wire;

namespace Serval.Links;

/// <summary>
/// UDP encapsulation (docs/protocol.md §1): the SAL packet is the UDP payload. The link binds one address and port
/// (default <see cref="ServalInfo.DefaultUdpPort"/>), sends from that port, and reports the source address and port of
/// every packet received, so replies go back to where a packet came from. Needs no privileges; IPv4 or IPv6.
/// </summary>
public sealed class UdpLink : ServalLink, ISocketIoHandler
{
    private readonly SocketIo _io;
    private readonly SocketIo? _broadcastIo;
    private ILinkReceiver? _receiver;

    /// <summary>Binds <paramref name="address"/> on <paramref name="port"/> (0 picks a free port).</summary>
    /// <exception cref="ArgumentException">The address is a wildcard, or an option is invalid.</exception>
    /// <exception cref="SocketException">The address cannot be bound (in use, not local).</exception>
    public UdpLink(IPAddress address, int port = ServalInfo.DefaultUdpPort, UdpLinkOptions? options = null)
        : this(new IPEndPoint(address ?? throw new ArgumentNullException(nameof(address)), port), options)
    {
    }

    /// <summary>Binds <paramref name="localEndPoint"/> (port 0 picks a free port).</summary>
    /// <exception cref="ArgumentException">The address is a wildcard, or an option is invalid.</exception>
    /// <exception cref="SocketException">The address cannot be bound (in use, not local).</exception>
    public UdpLink(IPEndPoint localEndPoint, UdpLinkOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(localEndPoint);
        options ??= UdpLinkOptions.Default;
        options.Validate();
        if (localEndPoint.Address.Equals(IPAddress.Any) || localEndPoint.Address.Equals(IPAddress.IPv6Any))
        {
            // The transport checksum covers the destination address, so the link must know which one it has.
            throw new ArgumentException("Bind a UDP link to a specific address, not a wildcard.", nameof(localEndPoint));
        }

        var socket = new Socket(localEndPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            SocketIo.SetBufferSizes(socket, options.SocketReceiveBufferSize, options.SocketSendBufferSize);

            socket.Bind(localEndPoint);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var bound = (IPEndPoint)socket.LocalEndPoint!;
        LocalAddress = LinkAddress.FromEndPoint(bound);
        Mtu = options.Mtu ?? (bound.AddressFamily == AddressFamily.InterNetworkV6 ? 1452 : 1472);
        Name = $"udp {LocalAddress}";
        _io = new SocketIo(socket, Name, Mtu, options.UseBatching, Counters, this, options.UseSegmentationOffload);
        if (options.Broadcast && OpenBroadcast(socket, bound) is { } b)
        {
            BroadcastAddress = LinkAddress.FromEndPoint((IPEndPoint)b.LocalEndPoint!);
            _broadcastIo = new SocketIo(b, $"{Name} broadcast", Mtu, options.UseBatching, Counters, new BroadcastHandler(this));
        }
    }

    /// <summary>
    /// The address every host of the link receives (docs/runtime.md, "Broadcast and discovery"): IPv4, the interface
    /// address's broadcast address with the link's port; IPv6, <see cref="ServalInfo.DiscoveryGroup"/> with the link's
    /// port. <see cref="LinkAddress.None"/> on loopback, without <see cref="UdpLinkOptions.Broadcast"/>, off Linux, or
    /// when the kernel refuses the receiving socket.
    /// </summary>
    public override LinkAddress BroadcastAddress { get; }

    /// <inheritdoc/>
    public override string Name { get; }

    /// <inheritdoc/>
    public override LinkAddress LocalAddress { get; }

    /// <inheritdoc/>
    public override int Mtu { get; }

    /// <summary>Whether this link sends and receives with <c>sendmmsg</c>/<c>recvmmsg</c>.</summary>
    public bool IsBatching => _io.Batching;

    /// <summary>Whether sends currently use UDP GSO (false when off, unsupported, or after a fallback).</summary>
    public bool IsSegmentationOffloadActive => _io.SegmentationOffload;

    /// <summary>Whether the socket asks the kernel to coalesce received datagrams (UDP GRO).</summary>
    public bool IsReceiveOffloadActive => _io.ReceiveOffload;

    /// <summary>The socket I/O (tests reach the socket through it).</summary>
    internal SocketIo Io => _io;

    /// <inheritdoc/>
    public override void Start(ILinkReceiver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        if (Interlocked.CompareExchange(ref _receiver, receiver, null) is not null)
        {
            throw new InvalidOperationException("The link is already started.");
        }

        _io.StartReceiving();
        _broadcastIo?.StartReceiving();
    }

    /// <inheritdoc/>
    /// <remarks>
    /// UDP encapsulation: the outer IP source is always the socket's own address (NATs may rewrite it further) and the
    /// outer TTL the kernel's default; <paramref name="source"/> and <paramref name="hopLimit"/> are not carried.
    /// </remarks>
    public override void Send(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) => _io.Send(destination, packet);

    /// <inheritdoc/>
    public override void Flush() => _io.Flush();

    /// <inheritdoc/>
    internal override Span<byte> GetSendSlot(int maxLength) => _io.GetSendSlot(maxLength);

    /// <inheritdoc/>
    internal override void CommitSend(LinkAddress source, LinkAddress destination, int length, int hopLimit) => _io.CommitSend(destination, length);

    void ISocketIoHandler.OnDatagram(LinkAddress source, ReadOnlySpan<byte> datagram, int hopLimit)
    {
        // The outer TTL measures the tunnel's hop, not the SAL packet's path: reported as unknown.
        Counters.Received(datagram.Length);
        _receiver?.Receive(source, LocalAddress, datagram, IPHopLimit.Unknown);
    }

    internal override void AttachReceiveThreadStart(Action start)
    {
        _io.ReceiveThreadStart = start;
        if (_broadcastIo is { } b)
        {
            b.ReceiveThreadStart = start;
        }
    }

    internal override void AttachLogger(Microsoft.Extensions.Logging.ILogger logger)
    {
        _io.Logger = logger;
        if (_broadcastIo is { } b)
        {
            b.Logger = logger;
        }
    }

    /// <inheritdoc/>
    internal override System.Net.IPAddress? OsAddress => LocalAddress.ToIPAddress();

    /// <inheritdoc/>
    internal override void AttachNetworkErrorHandler(Action handler) => _io.NetworkUnavailable = handler;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _io.Dispose();
            _broadcastIo?.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>
    /// Opens the socket that receives the link's broadcasts, and lets <paramref name="unicast"/> send to them; null
    /// when the link has none. On Linux a socket bound to a unicast address never receives broadcasts, and one bound
    /// to the wildcard address would receive every other datagram to the port too (the link could not tell which
    /// address a datagram was sent to, and the transport checksum covers it). So a second socket is bound to exactly
    /// the broadcast address (IPv4) or the discovery group on the address's interface (IPv6), with SO_REUSEADDR so that
    /// several hosts of one namespace share it; everything it receives was sent to that address.
    /// </summary>
    private static Socket? OpenBroadcast(Socket unicast, IPEndPoint bound)
    {
        if (!LinuxSockets.IsPlatformSupported || !Netlink.TryFind(bound.Address, out var index, out var osInterface, out var osAddress) || osInterface.IsLoopback)
        {
            return null;
        }

        IPEndPoint endPoint;
        if (bound.AddressFamily == AddressFamily.InterNetwork)
        {
            if (!osInterface.IsBroadcast || osAddress.PrefixLength > 30)
            {
                return null;
            }

            var broadcast = osAddress.Broadcast;
            if (broadcast is null)
            {
                // No broadcast configured (`ip addr add` without `brd`): the kernel still routes the subnet's directed broadcast.
                var mask = osAddress.PrefixLength == 0 ? 0u : uint.MaxValue << (32 - osAddress.PrefixLength);
                var value = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bound.Address.GetAddressBytes());
                broadcast = new IPAddress(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value | ~mask));
            }

            endPoint = new IPEndPoint(broadcast, bound.Port);
        }
        else
        {
            if (!osInterface.IsMulticast)
            {
                return null;
            }

            endPoint = new IPEndPoint(new IPAddress(ServalInfo.DiscoveryGroup.GetAddressBytes(), index), bound.Port);
        }

        var socket = new Socket(bound.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            if (bound.AddressFamily == AddressFamily.InterNetwork)
            {
                socket.Bind(endPoint);
                unicast.EnableBroadcast = true;
            }
            else
            {
                socket.Bind(endPoint);
                socket.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.AddMembership, new IPv6MulticastOption(ServalInfo.DiscoveryGroup, index));
                unicast.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastInterface, index);
            }

            return socket;
        }
        catch (SocketException)
        {
            socket.Dispose();
            return null;
        }
    }

    /// <summary>Delivers what the broadcast socket receives, addressed to the broadcast address; our own broadcasts (looped back by the kernel) are dropped.</summary>
    private sealed class BroadcastHandler(UdpLink link) : ISocketIoHandler
    {
        public void OnDatagram(LinkAddress source, ReadOnlySpan<byte> datagram, int hopLimit)
        {
            if (source == link.LocalAddress)
            {
                return;
            }

            link.Counters.Received(datagram.Length);
            link._receiver?.Receive(source, link.BroadcastAddress, datagram, IPHopLimit.Unknown);
        }
    }
}
