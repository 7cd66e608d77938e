using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Serval.Native;
using Serval.Wire;

namespace Serval.Links;

/// <summary>
/// Raw IP with protocol number 144 (docs/protocol.md §1), IPv4 or IPv6: what the reference implementation speaks, so
/// interoperability runs over it. Needs root or CAP_NET_RAW (<see cref="IsSupported"/>). The socket is bound to one
/// local address; since every raw socket for protocol 144 in the namespace receives a copy of every such packet,
/// packets not addressed to that address are discarded. IPv4 packets arrive with their IP header, which is stripped
/// after its TTL is read; IPv6 packets come with their hop limit in an <c>IPV6_HOPLIMIT</c> control message.
/// The link writes the IP header of every packet it sends (<c>IP_HDRINCL</c>, <c>IPV6_HDRINCL</c>): the source is
/// the one <see cref="Send"/> is given — a service router's forwarded first packet keeps the client's address, as
/// docs/protocol.md §8 requires, so the receiver's transport checksum verifies against the IP header — and the TTL / hop
/// limit is the one given (64 by default). The kernel fills in the IPv4 identification and header checksum.
/// The socket's kernel buffers are <see cref="SocketBufferSize"/> each in both directions (as a UDP link's by default),
/// so that a burst of a window's worth of segments is not dropped at the receiving socket.
/// </summary>
public sealed class RawIpLink : ServalLink, ISocketIoHandler
{
    private static readonly Lazy<bool> s_supported = new(Probe);
    private readonly SocketIo _io;
    private readonly bool _ipv4;
    private readonly bool _writesHeader;
    private readonly byte[] _header = new byte[Ipv6Repr.HeaderLength];
    private ILinkReceiver? _receiver;

    /// <summary>Opens a raw protocol-144 socket bound to <paramref name="address"/>.</summary>
    /// <param name="address">A specific local IPv4 or IPv6 address.</param>
    /// <param name="mtu">Largest SAL packet; null picks 1480 (IPv4) or 1460 (IPv6), a 1500-byte path.</param>
    /// <param name="useBatching">Use <c>sendmmsg</c>/<c>recvmmsg</c> (default true).</param>
    /// <exception cref="PlatformNotSupportedException">Not Linux, or no CAP_NET_RAW (see <see cref="IsSupported"/>).</exception>
    /// <exception cref="ArgumentException">The address is a wildcard or the MTU is out of range.</exception>
    public RawIpLink(IPAddress address, int? mtu = null, bool useBatching = true)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
        {
            throw new ArgumentException("Bind a raw IP link to a specific address, not a wildcard.", nameof(address));
        }

        if (mtu is < 256 or > 65_000)
        {
            throw new ArgumentException($"MTU must be 256 to 65000 bytes (was {mtu}).", nameof(mtu));
        }

        _ipv4 = address.AddressFamily == AddressFamily.InterNetwork;
        var socket = Open(_ipv4 ? LinuxSockets.AfInet : LinuxSockets.AfInet6, out var errno)
            ?? throw new PlatformNotSupportedException($"A raw IP socket for protocol 144 needs Linux and CAP_NET_RAW (errno {errno}).");
        try
        {
            SocketIo.SetBufferSizes(socket, SocketBufferSize, SocketBufferSize);
            socket.Bind(new IPEndPoint(address, 0));

            // We write the IP header ourselves, so that a forwarded packet keeps its client's source address.
            // IPV6_HDRINCL needs Linux 4.5; without it the kernel writes the header (our address, its hop limit).
            _writesHeader = _ipv4
                ? LinuxSockets.SetIntOption(socket.Handle, LinuxSockets.SolIp, LinuxSockets.IpHdrIncl, 1, out _)
                : LinuxSockets.SetIntOption(socket.Handle, LinuxSockets.SolIpv6, LinuxSockets.Ipv6HdrIncl, 1, out _);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        LocalAddress = LinkAddress.FromIPAddress(address);
        Mtu = mtu ?? (_ipv4 ? 1480 : 1460);
        Name = $"ip144 {LocalAddress}";
        // IPv4 receive includes the IP header (up to 60 bytes); sends carry our 20- or 40-byte header.
        _io = new SocketIo(socket, Name, Mtu + (_ipv4 ? 60 : Ipv6Repr.HeaderLength), useBatching, Counters, this, receiveHopLimit: !_ipv4);
    }

    /// <summary>The kernel receive and send buffer size of the link's socket, in bytes.</summary>
    public const int SocketBufferSize = 4 * 1024 * 1024;

    /// <summary>Whether this process may open raw protocol-144 sockets (Linux with root or CAP_NET_RAW).</summary>
    public static bool IsSupported => s_supported.Value;

    /// <inheritdoc/>
    public override string Name { get; }

    /// <inheritdoc/>
    public override LinkAddress LocalAddress { get; }

    /// <inheritdoc/>
    public override int Mtu { get; }

    /// <summary>Whether this link sends and receives with <c>sendmmsg</c>/<c>recvmmsg</c>.</summary>
    public bool IsBatching => _io.Batching;

    /// <summary>
    /// Whether the link writes the IP header of the packets it sends (<c>IP_HDRINCL</c> / <c>IPV6_HDRINCL</c>), so that
    /// they leave with the source address and hop limit the engine chose. False only where the kernel refuses the
    /// option (IPv6 before Linux 4.5): then every packet leaves from the link's address with the kernel's hop limit,
    /// and <see cref="RewritesSource"/> is true.
    /// </summary>
    public bool WritesIPHeader => _writesHeader;

    /// <summary>
    /// Whether received packets report their hop limit: always on IPv4 (the header arrives with the packet); on IPv6
    /// only with <c>recvmmsg</c> (<see cref="IsBatching"/>), whose control messages carry it.
    /// </summary>
    public bool ReportsHopLimit => _ipv4 || _io.ReceivesHopLimit;

    /// <inheritdoc/>
    /// <remarks>False: packets leave with the source address the engine gives (see <see cref="WritesIPHeader"/>).</remarks>
    public override bool RewritesSource => !_writesHeader;

    private static bool Probe()
    {
        using var s = Open(LinuxSockets.AfInet, out _);
        return s is not null;
    }

    private static Socket? Open(int family, out int errno)
    {
        errno = 0;
        if (!LinuxSockets.IsPlatformSupported)
        {
            return null;
        }

        int fd;
        try
        {
            fd = LinuxSockets.Socket(family, LinuxSockets.SockRaw, ServalInfo.IPProtocolNumber);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }

        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }

        try
        {
            return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        }
        catch
        {
            LinuxSockets.Close(fd);
            throw;
        }
    }

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
    /// The IP header carries <paramref name="source"/> (the link's address when it is missing or of the other family)
    /// and <paramref name="hopLimit"/> (<see cref="IPHopLimit.Default"/> when unknown).
    /// </remarks>
    public override void Send(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        destination = destination.WithPort(0);
        if (!_writesHeader)
        {
            _io.Send(destination, packet);
            return;
        }

        if (source.IsNone || source.Family != LocalAddress.Family)
        {
            source = LocalAddress;
        }

        if (destination.Family != LocalAddress.Family || packet.Length > ushort.MaxValue - Ipv6Repr.HeaderLength)
        {
            Counters.SendError();
            return;
        }

        // Version 4 without options, as the reference's headers (sr_syn_b.pcap); DF set, as the kernel's own header had
        // (the reference sends none; the flag is not part of the protocol); identification and checksum left for the kernel.
        var length = _ipv4
            ? new Ipv4Repr { Source = source.WithPort(0), Destination = destination, Protocol = ServalInfo.IPProtocolNumber, Ttl = IPHopLimit.OrDefault(hopLimit), DontFragment = true }.Emit(_header, packet.Length)
            : new Ipv6Repr { Source = source.WithPort(0), Destination = destination, NextHeader = ServalInfo.IPProtocolNumber, HopLimit = IPHopLimit.OrDefault(hopLimit) }.Emit(_header, packet.Length);
        _io.Send(destination, _header.AsSpan(0, length), packet);
    }

    /// <inheritdoc/>
    public override void Flush() => _io.Flush();

    /// <summary>The IP header this link writes in front of each packet (v4 without options, or v6), or 0 when the kernel writes it.</summary>
    private int HeaderRoom => !_writesHeader ? 0 : _ipv4 ? Ipv4Repr.MinHeaderLength : Ipv6Repr.HeaderLength;

    /// <inheritdoc/>
    internal override Span<byte> GetSendSlot(int maxLength)
    {
        var room = HeaderRoom;
        var slot = _io.GetSendSlot(room + maxLength);
        return slot.IsEmpty ? slot : slot[room..];
    }

    /// <inheritdoc/>
    internal override void CommitSend(LinkAddress source, LinkAddress destination, int length, int hopLimit)
    {
        destination = destination.WithPort(0);
        var room = HeaderRoom;
        if (room == 0)
        {
            _io.CommitSend(destination, length);
            return;
        }

        if (source.IsNone || source.Family != LocalAddress.Family)
        {
            source = LocalAddress;
        }

        if (destination.Family != LocalAddress.Family)
        {
            Counters.SendError();
            return;
        }

        // The same header Send writes, in the room kept in front of the packet.
        var slot = _io.GetSendSlot(room + length);
        var written = _ipv4
            ? new Ipv4Repr { Source = source.WithPort(0), Destination = destination, Protocol = ServalInfo.IPProtocolNumber, Ttl = IPHopLimit.OrDefault(hopLimit), DontFragment = true }.Emit(slot, length)
            : new Ipv6Repr { Source = source.WithPort(0), Destination = destination, NextHeader = ServalInfo.IPProtocolNumber, HopLimit = IPHopLimit.OrDefault(hopLimit) }.Emit(slot, length);
        if (written != room)
        {
            Counters.SendError();
            return;
        }

        _io.CommitSend(destination, room + length);
    }

    internal override void AttachLogger(Microsoft.Extensions.Logging.ILogger logger) => _io.Logger = logger;

    internal override void AttachReceiveThreadStart(Action start) => _io.ReceiveThreadStart = start;

    /// <inheritdoc/>
    internal override System.Net.IPAddress? OsAddress => LocalAddress.ToIPAddress();

    /// <inheritdoc/>
    internal override void AttachNetworkErrorHandler(Action handler) => _io.NetworkUnavailable = handler;

    void ISocketIoHandler.OnDatagram(LinkAddress source, ReadOnlySpan<byte> datagram, int hopLimit)
    {
        var destination = LocalAddress;
        if (_ipv4)
        {
            if (!Ipv4Repr.TryParse(datagram, out var ip, out var headerLength, out var payloadLength, out _)
                || ip.Protocol != ServalInfo.IPProtocolNumber || ip.IsFragment)
            {
                Counters.Dropped();
                return;
            }

            if (!ip.Destination.SameAddress(LocalAddress))
            {
                return; // another host's packet: every raw socket sees every protocol-144 packet
            }

            source = ip.Source;
            destination = ip.Destination;
            hopLimit = ip.Ttl;
            datagram = datagram.Slice(headerLength, payloadLength);
        }

        Counters.Received(datagram.Length);
        _receiver?.Receive(source.WithPort(0), destination, datagram, hopLimit);
    }

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
