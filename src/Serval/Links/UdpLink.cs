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
    }

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
    }

    /// <inheritdoc/>
    /// <remarks>
    /// UDP encapsulation: the outer IP source is always the socket's own address (NATs may rewrite it further) and the
    /// outer TTL the kernel's default; <paramref name="source"/> and <paramref name="hopLimit"/> are not carried.
    /// </remarks>
    public override void Send(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) => _io.Send(destination, packet);

    /// <inheritdoc/>
    public override void Flush() => _io.Flush();

    void ISocketIoHandler.OnDatagram(LinkAddress source, ReadOnlySpan<byte> datagram, int hopLimit)
    {
        // The outer TTL measures the tunnel's hop, not the SAL packet's path: reported as unknown.
        Counters.Received(datagram.Length);
        _receiver?.Receive(source, LocalAddress, datagram, IPHopLimit.Unknown);
    }

    internal override void AttachLogger(Microsoft.Extensions.Logging.ILogger logger) => _io.Logger = logger;

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
        }

        base.Dispose(disposing);
    }
}
