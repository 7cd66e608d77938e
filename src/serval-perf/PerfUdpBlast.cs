using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Serval.Perf;

/// <summary>
/// <c>serval-perf udp-blast receive|send</c>: what .NET pushes through a plain UDP socket with segmentation offload
/// (UDP_SEGMENT on the sender, UDP_GRO on the receiver), no protocol at all. bench/stream-veth.sh uses it as the
/// ceiling a user-space stack over UDP can reach on this machine (docs/results.md, "stream-veth").
/// </summary>
internal static class PerfUdpBlast
{
    private const int SolUdp = 17;
    private const int UdpSegment = 103;
    private const int UdpGro = 104;

    /// <summary>
    /// Receives until <paramref name="seconds"/> pass after the first datagram (or 5 s of silence after it); prints
    /// <c>udp-blast: gbps=&lt;n&gt; bytes=&lt;n&gt; seconds=&lt;n&gt;</c>. Prints <c>listening</c> once bound.
    /// </summary>
    public static int Receive(IPEndPoint bind, double seconds, TextWriter output, TextWriter error)
    {
        using var socket = new Socket(bind.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.ReceiveBufferSize = 8 * 1024 * 1024;
        socket.Bind(bind);
        TrySetOption(socket, UdpGro, 1);
        socket.ReceiveTimeout = 5000;
        error.WriteLine("udp-blast: listening on " + bind);
        error.Flush();
        var buffer = new byte[65536];
        long bytes = 0;
        Stopwatch? clock = null;
        var limit = TimeSpan.FromSeconds(seconds);
        while (clock is null || clock.Elapsed < limit)
        {
            int n;
            try
            {
                n = socket.Receive(buffer);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                break;
            }

            clock ??= Stopwatch.StartNew();
            bytes += n;
        }

        var elapsed = clock?.Elapsed.TotalSeconds ?? 0;
        var gbps = elapsed > 0 ? bytes * 8 / elapsed / 1e9 : 0;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"udp-blast: gbps={gbps:F3} bytes={bytes} seconds={elapsed:F3}"));
        return bytes > 0 ? 0 : 1;
    }

    /// <summary>
    /// Sends datagrams of <paramref name="datagram"/> bytes of UDP payload to <paramref name="peer"/> for
    /// <paramref name="seconds"/>, up to 64 KiB per system call (one UDP_SEGMENT send; one datagram per call when the
    /// kernel refuses segmentation).
    /// </summary>
    public static int Send(IPEndPoint? bind, IPEndPoint peer, int datagram, double seconds, TextWriter error)
    {
        using var socket = new Socket(peer.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.SendBufferSize = 8 * 1024 * 1024;
        if (bind is not null)
        {
            socket.Bind(bind);
        }

        socket.Connect(peer);
        var gso = TrySetOption(socket, UdpSegment, datagram);
        var perCall = gso ? Math.Min(64, 65_000 / datagram) * datagram : datagram;
        var buffer = new byte[perCall];
        Random.Shared.NextBytes(buffer);
        long bytes = 0;
        var calls = 0L;
        var clock = Stopwatch.StartNew();
        var limit = TimeSpan.FromSeconds(seconds);
        while (clock.Elapsed < limit)
        {
            try
            {
                bytes += socket.Send(buffer);
                calls++;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.NoBufferSpaceAvailable or SocketError.ConnectionRefused)
            {
                // A full queue or an ICMP error reported late: go on, as a blast does.
            }
        }

        error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"udp-blast: sent {bytes} bytes in {clock.Elapsed.TotalSeconds:F3} s, {calls} calls of {perCall} bytes, segmentation offload {(gso ? "on" : "off")}"));
        return 0;
    }

    private static bool TrySetOption(Socket socket, int option, int value)
    {
        try
        {
            socket.SetRawSocketOption(SolUdp, option, BitConverter.GetBytes(value));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
