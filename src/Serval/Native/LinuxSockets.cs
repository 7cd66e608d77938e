using System.Runtime.InteropServices;

namespace Serval.Native;

/// <summary>
/// libc socket calls that .NET does not expose: raw sockets for protocol 144 (.NET refuses unknown protocol numbers),
/// and the batch calls <c>sendmmsg</c>/<c>recvmmsg</c>. Declared for 64-bit Linux (glibc and musl share these layouts).
/// </summary>
internal static unsafe partial class LinuxSockets
{
    public const int AfInet = 2;
    public const int AfInet6 = 10;
    public const int SockRaw = 3;
    public const int SolSocket = 1;
    public const int SoRcvTimeo = 20;
    public const int SoSndBuf = 7;
    public const int SoRcvBuf = 8;
    public const int SoSndBufForce = 32;
    public const int SoRcvBufForce = 33;
    public const int SolUdp = 17;
    public const int SolIp = 0;
    public const int SolIpv6 = 41;
    public const int IpHdrIncl = 3;
    public const int Ipv6HdrIncl = 36;
    public const int Ipv6RecvHopLimit = 51;
    public const int Ipv6HopLimit = 52;
    public const int UdpSegment = 103;
    public const int UdpGro = 104;
    public const int MsgCTrunc = 0x08;
    public const int MsgTrunc = 0x20;
    public const int MsgDontWait = 0x40;
    public const int MsgWaitForOne = 0x10000;
    public const int EIntr = 4;
    public const int EAgain = 11;
    public const int EPerm = 1;
    public const int EAcces = 13;
    public const int EConnRefused = 111;
    public const int ENoBufs = 105;
    public const int EAddrNotAvail = 99;
    public const int ENetDown = 100;
    public const int ENetUnreach = 101;
    public const int EIo = 5;
    public const int EInval = 22;
    public const int ENoProtoOpt = 92;
    public const int EOpNotSupp = 95;

    /// <summary>Size of struct cmsghdr (64-bit): size_t length, int level, int type.</summary>
    public const int CmsgHeaderSize = 16;

    private const string Libc = "libc";

    /// <summary>Whether the batch calls and raw sockets can be used on this platform at all.</summary>
    public static bool IsPlatformSupported => OperatingSystem.IsLinux() && IntPtr.Size == 8;

    [LibraryImport(Libc, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Libc, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(nint fd, int level, int name, void* value, uint length);

    [LibraryImport(Libc, EntryPoint = "recvmmsg", SetLastError = true)]
    public static partial int RecvMmsg(nint fd, MMsgHdr* messages, uint count, int flags, void* timeout);

    [LibraryImport(Libc, EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, int who, int priority);

    [LibraryImport(Libc, EntryPoint = "gettid")]
    private static partial int GetTid();

    /// <summary>
    /// Sets the calling thread's nice value (Linux: PRIO_PROCESS with the thread's id applies to that thread only).
    /// Returns 0, or the errno (EACCES/EPERM: raising priority needs CAP_SYS_NICE).
    /// </summary>
    public static int SetCurrentThreadNice(int nice)
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }

        try
        {
            return SetPriority(0 /* PRIO_PROCESS */, GetTid(), nice) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        catch (EntryPointNotFoundException)
        {
            return EOpNotSupp;
        }
    }

    [LibraryImport(Libc, EntryPoint = "sendmmsg", SetLastError = true)]
    public static partial int SendMmsg(nint fd, MMsgHdr* messages, uint count, int flags);

    [LibraryImport(Libc, EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSockOpt(nint fd, int level, int name, void* value, uint* length);

    /// <summary>Sets an integer socket option; false (errno in <paramref name="errno"/>) when the kernel refuses it.</summary>
    public static bool SetIntOption(nint fd, int level, int name, int value, out int errno)
    {
        if (SetSockOpt(fd, level, name, &value, sizeof(int)) == 0)
        {
            errno = 0;
            return true;
        }

        errno = Marshal.GetLastPInvokeError();
        return false;
    }

    /// <summary>Reads an integer socket option; -1 when it cannot be read.</summary>
    public static int GetIntOption(nint fd, int level, int name)
    {
        int value;
        uint length = sizeof(int);
        return GetSockOpt(fd, level, name, &value, &length) == 0 ? value : -1;
    }

    /// <summary>CMSG_ALIGN: control messages are aligned to 8 bytes on 64-bit Linux.</summary>
    public static int CmsgAlign(int length) => (length + 7) & ~7;

    /// <summary>Sets SO_RCVTIMEO so that a blocking receive returns EAGAIN after <paramref name="milliseconds"/>.</summary>
    public static bool SetReceiveTimeout(nint fd, int milliseconds)
    {
        var tv = stackalloc long[2];
        tv[0] = milliseconds / 1000;
        tv[1] = milliseconds % 1000 * 1000;
        return SetSockOpt(fd, SolSocket, SoRcvTimeo, tv, 16) == 0;
    }

    /// <summary>struct iovec.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary>struct msghdr (64-bit Linux).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>struct mmsghdr.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MMsgHdr
    {
        public MsgHdr Header;
        public uint Length;
    }
}
