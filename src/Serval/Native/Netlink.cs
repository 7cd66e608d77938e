using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;

namespace Serval.Native;

/// <summary>
/// The few rtnetlink calls the interface monitor needs: a socket subscribed to link and address changes, and dumps of
/// the interfaces (flags) and of their addresses. A netlink socket belongs to the network namespace of the thread that
/// created it, whichever thread reads it later.
/// </summary>
internal static unsafe partial class Netlink
{
    public const int AfNetlink = 16;
    public const int NetlinkRoute = 0;
    public const int SockRawCloexec = 3 | 0x80000;
    public const uint GroupLink = 0x1;
    public const uint GroupIpv4Address = 0x10;
    public const uint GroupIpv6Address = 0x100;
    public const uint GroupIpv4Route = 0x40;
    public const uint GroupIpv6Route = 0x400;
    public const ushort NewRoute = 24; // RTM_NEWROUTE
    public const uint InterfaceUp = 0x1;
    public const uint InterfaceRunning = 0x40;
    public const uint InterfaceLoopback = 0x8;
    public const uint InterfaceBroadcast = 0x2;
    public const uint InterfaceMulticast = 0x1000;
    public const uint AddressTentative = 0x40;
    public const uint AddressDadFailed = 0x08;
    public const short PollIn = 0x1;

    private const ushort MessageDone = 3;
    private const ushort MessageError = 2;
    private const ushort NewLink = 16;
    private const ushort GetLink = 18;
    private const ushort NewAddress = 20;
    private const ushort GetAddress = 22;
    private const ushort RequestDump = 0x1 | 0x300;
    private const ushort AddressAttributeAddress = 1;
    private const ushort AddressAttributeLocal = 2;
    private const ushort AddressAttributeBroadcast = 4;
    private const ushort AddressAttributeFlags = 8;
    private const ushort LinkAttributeName = 3;
    private const string Libc = "libc";

    [LibraryImport(Libc, EntryPoint = "bind", SetLastError = true)]
    private static partial int Bind(int fd, void* address, uint length);

    [LibraryImport(Libc, EntryPoint = "send", SetLastError = true)]
    private static partial nint Send(int fd, void* buffer, nuint length, int flags);

    [LibraryImport(Libc, EntryPoint = "recv", SetLastError = true)]
    public static partial nint Receive(int fd, void* buffer, nuint length, int flags);

    [LibraryImport(Libc, EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeout);

    [LibraryImport(Libc, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport(Libc, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint length);

    [LibraryImport(Libc, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint length);

    /// <summary>Whether the <paramref name="length"/> bytes at <paramref name="buffer"/> (netlink messages) hold one of <paramref name="type"/>.</summary>
    public static bool HasMessage(byte* buffer, int length, ushort type)
    {
        for (var at = 0; at + 16 <= length;)
        {
            var messageLength = *(uint*)(buffer + at);
            if (*(ushort*)(buffer + at + 4) == type)
            {
                return true;
            }

            if (messageLength < 16)
            {
                return false;
            }

            at += (int)((messageLength + 3) & ~3u);
        }

        return false;
    }

    /// <summary>Opens a route netlink socket bound to <paramref name="groups"/> (0: requests only); -1 with errno on failure.</summary>
    public static int Open(uint groups, out int errno)
    {
        var fd = LinuxSockets.Socket(AfNetlink, SockRawCloexec, NetlinkRoute);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return -1;
        }

        // struct sockaddr_nl { sa_family_t nl_family; unsigned short nl_pad; __u32 nl_pid; __u32 nl_groups; }
        var address = stackalloc byte[12];
        new Span<byte>(address, 12).Clear();
        *(ushort*)address = AfNetlink;
        *(uint*)(address + 8) = groups;
        if (Bind(fd, address, 12) != 0 || !LinuxSockets.SetReceiveTimeout(fd, 2000))
        {
            errno = Marshal.GetLastPInvokeError();
            LinuxSockets.Close(fd);
            return -1;
        }

        errno = 0;
        return fd;
    }

    /// <summary>
    /// Dumps every interface (index → flags and name) and every address (with its prefix length, interface index and
    /// flags) seen by <paramref name="fd"/>'s namespace. False when the kernel did not answer completely.
    /// </summary>
    public static bool TryDump(int fd, ref uint sequence, out Dictionary<int, OsInterface> interfaces, out List<OsAddress> addresses)
    {
        interfaces = [];
        addresses = [];
        var f = interfaces;
        var a = addresses;
        return Request(fd, GetLink, 16, ++sequence, (type, body) =>
            {
                // struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; } then attributes.
                if (type == NewLink && body.Length >= 16)
                {
                    var name = string.Empty;
                    foreach (var (kind, value) in Attributes(body[16..]))
                    {
                        if (kind == LinkAttributeName)
                        {
                            var end = value.IndexOf((byte)0);
                            name = System.Text.Encoding.UTF8.GetString(end >= 0 ? value[..end] : value);
                        }
                    }

                    f[BinaryPrimitives.ReadInt32LittleEndian(body[4..])] = new OsInterface(BinaryPrimitives.ReadUInt32LittleEndian(body[8..]), name);
                }
            })
            && Request(fd, GetAddress, 8, ++sequence, (type, body) =>
            {
                // struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index; } then attributes.
                if (type == NewAddress && body.Length >= 8)
                {
                    var prefix = body[1];
                    uint flags = body[2];
                    var index = BinaryPrimitives.ReadInt32LittleEndian(body[4..]);
                    IPAddress? local = null;
                    IPAddress? address = null;
                    IPAddress? broadcast = null;
                    foreach (var (kind, value) in Attributes(body[8..]))
                    {
                        if (value.Length is 4 or 16)
                        {
                            if (kind == AddressAttributeBroadcast && value.Length == 4)
                            {
                                broadcast = new IPAddress(value);
                            }
                            else if (kind == AddressAttributeLocal)
                            {
                                local = new IPAddress(value);
                            }
                            else if (kind == AddressAttributeAddress)
                            {
                                address = new IPAddress(value);
                            }
                        }

                        if (kind == AddressAttributeFlags && value.Length >= 4)
                        {
                            flags = BinaryPrimitives.ReadUInt32LittleEndian(value);
                        }
                    }

                    if ((local ?? address) is { } ip)
                    {
                        a.Add(new OsAddress(index, ip, prefix) { Flags = flags, Broadcast = broadcast });
                    }
                }
            });
    }

    /// <summary>
    /// Looks <paramref name="address"/> up among the addresses of the calling thread's network namespace: the interface
    /// that carries it (index, flags, name) and the address entry (prefix, broadcast). False when no interface has it,
    /// or netlink is unavailable.
    /// </summary>
    public static bool TryFind(IPAddress address, out int index, out OsInterface osInterface, out OsAddress osAddress)
    {
        index = 0;
        osInterface = default;
        osAddress = default;
        if (!LinuxSockets.IsPlatformSupported)
        {
            return false;
        }

        var fd = Open(0, out _);
        if (fd < 0)
        {
            return false;
        }

        try
        {
            uint sequence = 0;
            if (!TryDump(fd, ref sequence, out var interfaces, out var addresses))
            {
                return false;
            }

            var bytes = address.GetAddressBytes();
            foreach (var a in addresses)
            {
                // Compared without the scope (a link-local address bound with its interface as scope).
                if (a.Address.GetAddressBytes().AsSpan().SequenceEqual(bytes) && interfaces.TryGetValue(a.Interface, out var i))
                {
                    (index, osInterface, osAddress) = (a.Interface, i, a);
                    return true;
                }
            }

            return false;
        }
        finally
        {
            LinuxSockets.Close(fd);
        }
    }

    /// <summary>The route attributes (type, value) in <paramref name="attributes"/>, stopping at the first malformed one.</summary>
    private static List<(ushort Kind, byte[] Value)> Attributes(ReadOnlySpan<byte> attributes)
    {
        var list = new List<(ushort, byte[])>();
        while (attributes.Length >= 4)
        {
            var length = BinaryPrimitives.ReadUInt16LittleEndian(attributes);
            var kind = BinaryPrimitives.ReadUInt16LittleEndian(attributes[2..]);
            if (length < 4 || length > attributes.Length)
            {
                break;
            }

            list.Add(((ushort)(kind & 0x3FFF), attributes[4..length].ToArray()));
            var aligned = (length + 3) & ~3;
            attributes = aligned >= attributes.Length ? [] : attributes[aligned..];
        }

        return list;
    }

    private delegate void MessageHandler(ushort type, ReadOnlySpan<byte> body);

    private static bool Request(int fd, ushort type, int bodyLength, uint sequence, MessageHandler handler)
    {
        var length = 16 + bodyLength;
        var request = stackalloc byte[length];
        var span = new Span<byte>(request, length);
        span.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(span[6..], RequestDump);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], sequence);
        if (Send(fd, request, (nuint)length, 0) != length)
        {
            return false;
        }

        var buffer = new byte[65536];
        fixed (byte* b = buffer)
        {
            while (true)
            {
                var n = (int)Receive(fd, b, (nuint)buffer.Length, 0);
                if (n <= 0)
                {
                    return false;
                }

                var messages = buffer.AsSpan(0, n);
                while (messages.Length >= 16)
                {
                    var messageLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(messages);
                    var messageType = BinaryPrimitives.ReadUInt16LittleEndian(messages[4..]);
                    var messageSequence = BinaryPrimitives.ReadUInt32LittleEndian(messages[8..]);
                    if (messageLength < 16 || messageLength > messages.Length)
                    {
                        return false;
                    }

                    if (messageSequence == sequence)
                    {
                        if (messageType == MessageDone)
                        {
                            return true;
                        }

                        if (messageType == MessageError)
                        {
                            return false;
                        }

                        handler(messageType, messages[16..messageLength]);
                    }

                    var aligned = (messageLength + 3) & ~3;
                    messages = aligned >= messages.Length ? [] : messages[aligned..];
                }
            }
        }
    }

    /// <summary>struct pollfd.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short ReturnedEvents;
    }
}

/// <summary>One operating-system interface: its flags (<c>IFF_*</c>) and name.</summary>
internal readonly record struct OsInterface(uint Flags, string Name)
{
    /// <summary>Up and running.</summary>
    public bool IsUsable => (Flags & (Netlink.InterfaceUp | Netlink.InterfaceRunning)) == (Netlink.InterfaceUp | Netlink.InterfaceRunning);

    /// <summary>The loopback interface.</summary>
    public bool IsLoopback => (Flags & Netlink.InterfaceLoopback) != 0;

    /// <summary>The interface supports link broadcast (<c>IFF_BROADCAST</c>).</summary>
    public bool IsBroadcast => (Flags & Netlink.InterfaceBroadcast) != 0;

    /// <summary>The interface supports multicast (<c>IFF_MULTICAST</c>).</summary>
    public bool IsMulticast => (Flags & Netlink.InterfaceMulticast) != 0;
}

/// <summary>One address of an operating-system interface.</summary>
internal readonly record struct OsAddress(int Interface, IPAddress Address, int PrefixLength)
{
    /// <summary>The address's flags (<c>IFA_F_*</c>).</summary>
    public uint Flags { get; init; }

    /// <summary>The IPv4 broadcast address the kernel reports for it (<c>IFA_BROADCAST</c>), if any.</summary>
    public IPAddress? Broadcast { get; init; }

    /// <summary>Whether the address can be bound: not tentative (duplicate address detection still running) nor failed.</summary>
    public bool IsUsable => (Flags & (Netlink.AddressTentative | Netlink.AddressDadFailed)) == 0;

    /// <summary>Whether <paramref name="ip"/> lies in this address's prefix.</summary>
    public bool Covers(IPAddress ip)
    {
        if (ip.AddressFamily != Address.AddressFamily)
        {
            return false;
        }

        Span<byte> x = stackalloc byte[16];
        Span<byte> y = stackalloc byte[16];
        ip.TryWriteBytes(x, out var n);
        Address.TryWriteBytes(y, out _);
        var bits = Math.Min(PrefixLength, n * 8);
        for (var i = 0; i < bits; i++)
        {
            var mask = 0x80 >> (i & 7);
            if ((x[i >> 3] & mask) != (y[i >> 3] & mask))
            {
                return false;
            }
        }

        return true;
    }
}
