using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// The three processes of <c>bench/run.sh forward</c> (bench/forward.sh), each run in its own network namespace:
/// <list type="bullet">
/// <item><c>forward-send TO:PORT serval|udp SECONDS</c>: sends 48-byte payloads as fast as one thread can, either as
/// unconnected Serval datagrams to the benchmark's serviceID (SAL header, two SERVICE extensions and UDP header,
/// encapsulated in UDP to a router) or as plain UDP datagrams.</item>
/// <item><c>forward-recv BIND:PORT WARMUP SECONDS</c>: counts the datagrams arriving on a plain UDP socket in a window
/// that opens WARMUP seconds after the first one; prints <c>recv: packets=… pps=…</c>.</item>
/// <item><c>forward-router IN OUT NEXT:PORT WARMUP SECONDS</c>: a ServalHost in service-router mode with a UDP link on
/// each side and one FORWARD rule for the serviceID to NEXT; over the same kind of window it measures the packets the
/// rule forwarded, this process's CPU time (user + system, all threads) and the bytes the process allocated
/// (<see cref="GC.GetTotalAllocatedBytes(bool)"/>); prints <c>router: forwarded=… cpu_ns_per_packet=…
/// alloc_bytes_per_packet=… in_place=…</c>.</item>
/// </list>
/// </summary>
internal static class ForwardBenchmark
{
    public static readonly ServiceId Service = ServiceId.FromName("bench.forward");
    private static readonly ServiceId SenderService = ServiceId.FromName("bench.forward.sender");
    private const int PayloadLength = 48;

    public static int Send(string[] args)
    {
        var to = IPEndPoint.Parse(args[0]);
        var serval = args[1] == "serval";
        var seconds = double.Parse(args[2], CultureInfo.InvariantCulture);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(to);
        var packet = new byte[256];
        int length;
        if (serval)
        {
            var repr = new SalPacketRepr
            {
                SourceFlow = new FlowId(0x5E4D),
                Protocol = SalPacketRepr.ProtocolUdp,
                DestinationService = Service,
                SourceService = SenderService,
                Udp = new UdpRepr { HasChecksum = true },
            };
            var payload = new byte[PayloadLength];
            payload.AsSpan().Fill(0x42);
            var local = LinkAddress.FromEndPoint((IPEndPoint)socket.LocalEndPoint!);
            length = repr.Emit(packet, payload, TransportPseudoHeader.ForLink(local, LinkAddress.FromEndPoint(to)));
        }
        else
        {
            length = PayloadLength;
            packet.AsSpan(0, length).Fill(0x42);
        }

        var deadline = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        long sent = 0;
        while (true)
        {
            for (var i = 0; i < 256; i++)
            {
                try
                {
                    socket.Send(packet.AsSpan(0, length));
                    sent++;
                }
                catch (SocketException)
                {
                    // ECONNREFUSED from an earlier ICMP error (no receiver yet) or a full buffer: keep sending.
                }
            }

            if (Stopwatch.GetTimestamp() >= deadline)
            {
                break;
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"send: packets={sent} pps={sent / seconds:F0}"));
        return 0;
    }

    public static int Receive(string[] args)
    {
        var bind = IPEndPoint.Parse(args[0]);
        var warmup = TimeSpan.FromSeconds(double.Parse(args[1], CultureInfo.InvariantCulture));
        var window = TimeSpan.FromSeconds(double.Parse(args[2], CultureInfo.InvariantCulture));
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.ReceiveBufferSize = 4 << 20;
        socket.Bind(bind);
        socket.ReceiveTimeout = 30_000; // bounded: no first packet within 30 s ends the run
        Console.WriteLine("recv: ready");
        var buffer = new byte[2048];
        try
        {
            socket.Receive(buffer);
        }
        catch (SocketException)
        {
            Console.WriteLine("recv: packets=0 pps=0");
            return 1;
        }

        socket.ReceiveTimeout = 1000;
        var first = Stopwatch.GetTimestamp();
        var open = first + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var close = open + (long)(window.TotalSeconds * Stopwatch.Frequency);
        long counted = 0;
        while (true)
        {
            int n;
            try
            {
                n = socket.Receive(buffer);
            }
            catch (SocketException)
            {
                n = 0;
            }

            var now = Stopwatch.GetTimestamp();
            if (now >= close)
            {
                break;
            }

            if (n > 0 && now >= open)
            {
                counted++;
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"recv: packets={counted} pps={counted / window.TotalSeconds:F0}"));
        return 0;
    }

    public static async Task<int> RouterAsync(string[] args)
    {
        var inAddress = IPAddress.Parse(args[0]);
        var outAddress = IPAddress.Parse(args[1]);
        var next = IPEndPoint.Parse(args[2]);
        var warmup = TimeSpan.FromSeconds(double.Parse(args[3], CultureInfo.InvariantCulture));
        var window = TimeSpan.FromSeconds(double.Parse(args[4], CultureInfo.InvariantCulture));
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "router",
            Links = [new UdpLink(inAddress), new UdpLink(outAddress)],
            Engine = EngineOptions.Default with { Mode = EngineMode.ServiceRouter },
        }).ConfigureAwait(false);
        var target = ServiceTarget.Forward(LinkAddress.FromEndPoint(next), 2);
        await router.Admin.AddRuleAsync(ServicePrefix.Exact(Service), target).ConfigureAwait(false);
        Console.WriteLine("router: ready");

        long Forwarded() => router.Counters.Forwarded;

        // Bounded: the first packet within 30 s, else the run ends.
        var waited = Stopwatch.StartNew();
        while (Forwarded() == 0)
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(30))
            {
                Console.WriteLine("router: forwarded=0 cpu_ns_per_packet=0 alloc_bytes_per_packet=0 in_place=0");
                return 1;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }

        await Task.Delay(warmup).ConfigureAwait(false);
        using var process = Process.GetCurrentProcess();
        var threads0 = ThreadTicks();
        var forwarded0 = Forwarded();
        var inPlace0 = router.Counters.ForwardedInPlace;
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        var alloc0 = GC.GetTotalAllocatedBytes(precise: true);
        await Task.Delay(window).ConfigureAwait(false);
        var alloc1 = GC.GetTotalAllocatedBytes(precise: true);
        process.Refresh();
        var cpu1 = process.TotalProcessorTime;
        var threads1 = ThreadTicks();
        var forwarded = Forwarded() - forwarded0;
        var inPlace = router.Counters.ForwardedInPlace - inPlace0;
        var perPacket = Math.Max(1, forwarded);
        var split = threads1
            .Select(t => (t.Key, Ns: (t.Value - threads0.GetValueOrDefault(t.Key)) * 1e9 / TicksPerSecond / perPacket))
            .Where(t => t.Ns >= 1)
            .OrderByDescending(t => t.Ns)
            .Select(t => string.Create(CultureInfo.InvariantCulture, $"'{t.Key}' {t.Ns:F0}"));
        Console.WriteLine($"router: CPU ns per packet by thread (user + system, /proc clock ticks): {string.Join(", ", split)}");
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"router: forwarded={forwarded} cpu_ns_per_packet={(cpu1 - cpu0).TotalNanoseconds / perPacket:F0} alloc_bytes_per_packet={(double)(alloc1 - alloc0) / perPacket:F1} in_place={inPlace}"));
        return 0;
    }

    private const double TicksPerSecond = 100; // USER_HZ on Linux

    /// <summary>User + system clock ticks of each of this process's threads, summed by thread name.</summary>
    private static Dictionary<string, long> ThreadTicks()
    {
        var result = new Dictionary<string, long>();
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                var name = File.ReadAllText(Path.Combine(task, "comm")).Trim();
                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                result[name] = result.GetValueOrDefault(name) + ticks;
            }
            catch (IOException)
            {
                // the thread ended
            }
        }

        return result;
    }
}
