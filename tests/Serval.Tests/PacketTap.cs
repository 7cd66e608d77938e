using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Serval.Native;
using Serval.Wire;

namespace Serval.Tests;

/// <summary>
/// Reads the real IPv4 and IPv6 packets of protocol 144 that the kernel sends and receives, as the wire has them (kernel-made
/// IP header included), and checks each with <see cref="ReferenceLayout.Check"/> on a background thread; keeps only the
/// results, so long transfers cost no memory. Either a packet socket (<c>AF_PACKET</c>, <c>SOCK_DGRAM</c>, <c>ETH_P_ALL</c>,
/// both directions of every interface of the namespace it is created in), or a raw protocol-144 socket (every
/// protocol-144 packet delivered in the namespace: on loopback, both directions). Only packets whose source or
/// destination is one of the given addresses count. Needs root (CAP_NET_RAW).
/// </summary>
internal sealed class PacketTap : IDisposable
{
    private const int AfPacket = 17;
    private const int SockDgram = 2;
    private const int SoRcvBufForce = 33;
    private const int EthPAllNetworkOrder = 0x0300; // htons(ETH_P_ALL): only "all" taps see outgoing packets too
    private readonly Socket _socket;
    private readonly HashSet<UInt128> _addresses;
    private readonly Thread _thread;
    private readonly List<ReferenceLayout.Packet> _packets = [];
    private readonly List<string> _failures = [];
    private long _stopAt = long.MaxValue;
    private long _seen;

    private PacketTap(Socket socket, IEnumerable<LinkAddress> addresses)
    {
        _socket = socket;
        _socket.ReceiveTimeout = 100;
        // SO_RCVBUFFORCE (root) passes net.core.rmem_max, so bursts at full speed queue instead of being dropped.
        _socket.SetRawSocketOption(LinuxSockets.SolSocket, SoRcvBufForce, BitConverter.GetBytes(64 * 1024 * 1024));
        _addresses = [.. addresses.Select(a => Key(a.ToIPAddress().GetAddressBytes()))];
        _thread = new Thread(Run) { IsBackground = true, Name = "packet tap" };
        _thread.Start();
    }

    /// <summary>Every packet of protocol 144 seen so far, checked.</summary>
    public IReadOnlyList<ReferenceLayout.Packet> Packets
    {
        get
        {
            lock (_packets)
            {
                return [.. _packets];
            }
        }
    }

    /// <summary>Packets that failed the layout check (the first 20, with the reason and the bytes).</summary>
    public IReadOnlyList<string> Failures
    {
        get
        {
            lock (_packets)
            {
                return [.. _failures];
            }
        }
    }

    /// <summary>Protocol-144 packets to or from the addresses, checked or failed.</summary>
    public long Seen => Interlocked.Read(ref _seen);

    /// <summary>A packet socket; call it inside the namespace to tap (e.g. through <c>NetNamespace.Invoke</c>).</summary>
    public static PacketTap OnInterfaces(params LinkAddress[] addresses) => new(Open(AfPacket, SockDgram, EthPAllNetworkOrder), addresses);

    /// <summary>A raw protocol-144 socket of the current namespace.</summary>
    public static PacketTap Raw144(params LinkAddress[] addresses) =>
        new(Open(LinuxSockets.AfInet, LinuxSockets.SockRaw, ServalInfo.IPProtocolNumber), addresses);

    /// <summary>Stops reading once the socket's queue is empty (at most a second later).</summary>
    public void Dispose()
    {
        Interlocked.Exchange(ref _stopAt, Environment.TickCount64 + 1000);
        _thread.Join(TimeSpan.FromSeconds(10));
        _socket.Dispose();
    }

    private static Socket Open(int family, int type, int protocol)
    {
        var fd = LinuxSockets.Socket(family, type, protocol);
        if (fd < 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }

        return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
    }

    private static UInt128 Key(ReadOnlySpan<byte> address) =>
        address.Length == 4 ? BinaryPrimitives.ReadUInt32BigEndian(address) : BinaryPrimitives.ReadUInt128BigEndian(address);

    /// <summary>Whether <paramref name="ip"/> is an IPv4 or IPv6 packet of protocol 144 (no IPv6 extension headers).</summary>
    private static bool IsProtocol144(ReadOnlySpan<byte> ip, out UInt128 source, out UInt128 destination)
    {
        (source, destination) = (0, 0);
        if (ip.Length >= 20 && ip[0] >> 4 == 4 && ip[9] == ServalInfo.IPProtocolNumber)
        {
            (source, destination) = (Key(ip[12..16]), Key(ip[16..20]));
            return true;
        }

        if (ip.Length >= 40 && ip[0] >> 4 == 6 && ip[6] == ServalInfo.IPProtocolNumber)
        {
            (source, destination) = (Key(ip[8..24]), Key(ip[24..40]));
            return true;
        }

        return false;
    }

    private void Run()
    {
        var buffer = new byte[65536];
        while (Environment.TickCount64 < Interlocked.Read(ref _stopAt))
        {
            int n;
            try
            {
                n = _socket.Receive(buffer);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                if (Interlocked.Read(ref _stopAt) != long.MaxValue)
                {
                    return; // stopping, and nothing is queued any more
                }

                continue;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            var ip = buffer.AsSpan(0, n);
            if (!IsProtocol144(ip, out var source, out var destination) || !(_addresses.Contains(source) || _addresses.Contains(destination)))
            {
                continue;
            }

            Interlocked.Increment(ref _seen);
            try
            {
                var packet = ReferenceLayout.Check(ip);
                lock (_packets)
                {
                    _packets.Add(packet);
                }
            }
            catch (LayoutException e)
            {
                lock (_packets)
                {
                    if (_failures.Count < 20)
                    {
                        _failures.Add($"{e.Message}: {Convert.ToHexString(ip[..Math.Min(n, 120)])}");
                    }
                }
            }
        }
    }
}
