using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Serval.Netns;

/// <summary>
/// Changes IPv4 addresses and the default route of one interface in a namespace with rtnetlink requests on a socket
/// opened inside it (what <c>ip addr</c> and <c>ip route</c> send, without starting a process): each change takes tens
/// of microseconds instead of the milliseconds a process takes to start on a busy machine, so a benchmark can change
/// addresses on several hosts at practically the same instant. Every request is acknowledged by the kernel; a refusal
/// throws <see cref="NetnsException"/> with the errno.
/// </summary>
public sealed partial class NetlinkAddresses : IDisposable
{
    private const ushort RtmNewAddress = 20; // RTM_NEWADDR
    private const ushort RtmDeleteAddress = 21; // RTM_DELADDR
    private const ushort RtmNewRoute = 24; // RTM_NEWROUTE
    private const ushort Request = 0x1; // NLM_F_REQUEST
    private const ushort Ack = 0x4; // NLM_F_ACK
    private const ushort Replace = 0x100; // NLM_F_REPLACE
    private const ushort Create = 0x400; // NLM_F_CREATE
    private const ushort Error = 2; // NLMSG_ERROR

    private readonly int _fd;
    private readonly int _interfaceIndex;
    private readonly byte[] _buffer = new byte[8192];
    private uint _sequence;

    private int _disposed;

    private NetlinkAddresses(int fd, int interfaceIndex)
    {
        _fd = fd;
        _interfaceIndex = interfaceIndex;
    }

    /// <summary>Opens a route socket inside <paramref name="ns"/> for changes to interface <paramref name="device"/>.</summary>
    public static NetlinkAddresses Open(NetNamespace ns, string device)
    {
        ArgumentNullException.ThrowIfNull(ns);
        // "3: c0@if2: <BROADCAST,...": the interface index comes first.
        var line = ns.Ip("-o", "link", "show", "dev", device);
        var index = int.Parse(line[..line.IndexOf(':', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
        var fd = ns.Invoke(() => socket(16 /* AF_NETLINK */, 3 | 0x80000 /* SOCK_RAW | SOCK_CLOEXEC */, 0 /* NETLINK_ROUTE */));
        if (fd < 0)
        {
            throw new NetnsException($"socket(AF_NETLINK) in {ns.Name} failed: errno {Marshal.GetLastPInvokeError()}");
        }

        // SO_RCVTIMEO 5 s: an unanswered request fails instead of waiting for ever.
        Span<long> timeout = [5, 0];
        unsafe
        {
            fixed (long* t = timeout)
            {
                _ = setsockopt(fd, 1 /* SOL_SOCKET */, 20 /* SO_RCVTIMEO */, t, 16);
            }
        }

        return new NetlinkAddresses(fd, index);
    }

    /// <summary>Adds <paramref name="address"/>/<paramref name="prefixLength"/> to the interface (as <c>ip addr add</c>).</summary>
    public void AddAddress(IPAddress address, int prefixLength) => ChangeAddress(RtmNewAddress, Create | 0x200 /* EXCL */, address, prefixLength);

    /// <summary>Removes <paramref name="address"/>/<paramref name="prefixLength"/> from the interface (as <c>ip addr del</c>).</summary>
    public void DeleteAddress(IPAddress address, int prefixLength) => ChangeAddress(RtmDeleteAddress, 0, address, prefixLength);

    /// <summary>Sets the IPv4 default route to go through <paramref name="gateway"/> on the interface (as <c>ip route replace default via</c>).</summary>
    public void ReplaceDefaultRoute(IPAddress gateway)
    {
        var m = new byte[16 + 12 + 8 + 8];
        // rtmsg: family, dst_len, src_len, tos, table (main), protocol (boot), scope (universe), type (unicast), flags.
        m[16] = (byte)AddressFamily.InterNetwork;
        m[20] = 254;
        m[21] = 3;
        m[22] = 0;
        m[23] = 1;
        Attribute(m, 28, 5 /* RTA_GATEWAY */, gateway.GetAddressBytes());
        var oif = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(oif, _interfaceIndex);
        Attribute(m, 36, 4 /* RTA_OIF */, oif);
        Transact(m, RtmNewRoute, Create | Replace);
    }

    /// <summary>Closes the route socket.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _ = close(_fd);
        }
    }

    private void ChangeAddress(ushort type, ushort flags, IPAddress address, int prefixLength)
    {
        if (address.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("IPv4 only", nameof(address));
        }

        var m = new byte[16 + 8 + 8 + 8];
        // ifaddrmsg: family, prefix length, flags, scope (universe), interface index.
        m[16] = (byte)AddressFamily.InterNetwork;
        m[17] = (byte)prefixLength;
        BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(20), _interfaceIndex);
        Attribute(m, 24, 2 /* IFA_LOCAL */, address.GetAddressBytes());
        Attribute(m, 32, 1 /* IFA_ADDRESS */, address.GetAddressBytes());
        Transact(m, type, flags);
    }

    private static void Attribute(byte[] m, int offset, ushort type, byte[] value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(offset), (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(offset + 2), type);
        value.CopyTo(m, offset + 4);
    }

    /// <summary>Sends one request with a header and waits for the kernel's acknowledgement (errno 0) or refusal.</summary>
    private void Transact(byte[] m, ushort type, ushort flags)
    {
        var sequence = ++_sequence;
        BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)m.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(6), (ushort)(Request | Ack | flags));
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), sequence);
        unsafe
        {
            fixed (byte* p = m)
            {
                if (send(_fd, p, (nuint)m.Length, 0) != m.Length)
                {
                    throw new NetnsException($"rtnetlink send failed: errno {Marshal.GetLastPInvokeError()}");
                }
            }
        }

        while (true)
        {
            nint n;
            unsafe
            {
                fixed (byte* p = _buffer)
                {
                    n = recv(_fd, p, (nuint)_buffer.Length, 0);
                }
            }

            if (n < 0)
            {
                throw new NetnsException($"rtnetlink receive failed: errno {Marshal.GetLastPInvokeError()}");
            }

            for (var at = 0; at + 16 <= n;)
            {
                var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(at));
                var kind = BinaryPrimitives.ReadUInt16LittleEndian(_buffer.AsSpan(at + 4));
                var seq = BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(at + 8));
                if (kind == Error && seq == sequence)
                {
                    var errno = -BinaryPrimitives.ReadInt32LittleEndian(_buffer.AsSpan(at + 16));
                    if (errno != 0)
                    {
                        throw new NetnsException($"rtnetlink request {type} on interface {_interfaceIndex} refused: errno {errno}");
                    }

                    return;
                }

                if (length < 16)
                {
                    break;
                }

                at += (length + 3) & ~3;
            }
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int setsockopt(int fd, int level, int name, void* value, uint length);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint send(int fd, void* buffer, nuint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint recv(int fd, void* buffer, nuint length, int flags);

    [LibraryImport("libc")]
    private static partial int close(int fd);
}
