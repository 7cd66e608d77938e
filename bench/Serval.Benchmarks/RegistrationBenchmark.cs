using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// Registration churn against a real router (<see cref="ServalHost"/> with the router controller, a UDP link on
/// loopback):
/// <list type="number">
/// <item>Absorption: the first Register messages of many hosts, each binding many services, are produced by real
/// <see cref="HostController"/>s on in-memory engines (asking a 10-minute lease, so nothing expires during the run), then replayed over UDP to the router as fast as it takes them
/// (closed loop: at most <c>window</c> not yet registered, so the socket never overflows). Rate = registrations the
/// router installed / time from the first datagram to the last registration.</item>
/// <item>Bind to first routable SYN: a replica host registers with the router; a client host whose default route is
/// the router opens a new connection every millisecond to a service the replica is about to bind. Time = from just
/// before <c>ServalListener.ListenAsync</c> on the replica to the replica accepting the first connection routed through
/// the router (SYN, SYN-ACK, ACK on loopback included). p50 and p99 over the samples.</item>
/// </list>
/// Bounded: a fixed number of registrations and samples, each stage with a deadline.
/// </summary>
internal static class RegistrationBenchmark
{
    private static readonly TimeSpan Now0 = TimeSpan.FromSeconds(1);
    private static readonly int Net = Random.Shared.Next(1, 250);
    private static int s_nextHost = 1;

    /// <summary>A loopback address of its own (127.Net.0.x) for each host.</summary>
    private static IPAddress NextLoopback() => new([127, (byte)Net, 0, (byte)Interlocked.Increment(ref s_nextHost)]);

    public static async Task<int> RunAsync(string[] args)
    {
        var hosts = Arg(args, 0, 100);
        var perHost = Arg(args, 1, 500);
        var samples = Arg(args, 2, 200);
        var rate = await AbsorptionAsync(hosts, perHost).ConfigureAwait(false);
        var (p50, p99) = await BindToRoutableAsync(samples).ConfigureAwait(false);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"registration: registrations_per_s={rate:F0} bind_to_routable_ms_p50={p50:F2} p99={p99:F2}"));
        return 0;
    }

    private static int Arg(string[] args, int i, int fallback) =>
        args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;

    // ------------------------------------------------------------------------------------------------------------

    private static async Task<double> AbsorptionAsync(int hosts, int perHost)
    {
        // Warm-up (JIT, table growth) with 10 % more hosts, not counted.
        var warmHosts = Math.Max(1, hosts / 10);
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "router",
            Links = [new UdpLink(NextLoopback())],
            Engine = EngineOptions.Default with { Mode = EngineMode.ServiceRouter },
            RouterControl = RouterControllerOptions.Default with
            {
                MaxRegistrations = ((hosts + warmHosts) * perHost) + 16,
                MaxPeers = hosts + warmHosts + 16,
                MaxLease = TimeSpan.FromMinutes(10),
            },
        }).ConfigureAwait(false);
        var routerAddress = router.Links[0].LocalAddress;
        var counters = (await router.Admin.GetRouterSnapshotAsync().ConfigureAwait(false)).Counters;

        var all = GenerateRegisters(hosts + warmHosts, perHost, routerAddress);
        var warm = all[..(warmHosts * perHost)];
        var packets = all[(warmHosts * perHost)..];
        Console.Error.WriteLine($"absorption: {hosts} hosts x {perHost} services = {packets.Count} Register messages (first transmissions of real host controllers), replayed over loopback UDP to {routerAddress}");

        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(NextLoopback(), 0));
        var target = routerAddress.ToEndPoint();
        var (warmed, _) = Replay(socket, target, warm, counters);
        Console.Error.WriteLine($"absorption: warm-up {warmed}/{warm.Count} registrations");

        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var (absorbed, seconds) = Replay(socket, target, packets, counters);
        cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        var perSecond = absorbed / seconds;
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"absorption: {absorbed}/{packets.Count} registrations installed in {seconds * 1000:F1} ms = {perSecond:F0}/s; rejected {counters.Rejected}, malformed {counters.Malformed}, acks sent {counters.AcksSent}; router rules now {router.Admin.GetRules().Count}; process CPU (router and sender) {cpu.TotalMicroseconds / Math.Max(1, absorbed):F1} µs per registration; load average {LoadAverage()}"));
        if (absorbed < packets.Count * 0.99)
        {
            Console.Error.WriteLine("absorption: more than 1 % of the registrations were lost");
        }

        return perSecond;
    }

    /// <summary>
    /// Sends <paramref name="packets"/> keeping at most a window of them not yet registered (no socket overflow);
    /// returns how many the router registered and the time from the first send to the last registration. Bounded by 60 s.
    /// </summary>
    private static (long Absorbed, double Seconds) Replay(Socket socket, EndPoint target, List<byte[]> packets, RouterControllerCounters counters)
    {
        const int window = 1024;
        var before = counters.Registered;
        var sw = Stopwatch.StartNew();
        var lastProgress = TimeSpan.Zero;
        long seen = 0;
        var sent = 0;
        var acks = new byte[2048];
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            var registered = counters.Registered - before;
            if (registered != seen)
            {
                seen = registered;
                lastProgress = sw.Elapsed;
            }

            if (registered >= packets.Count)
            {
                break;
            }

            if (sent < packets.Count && sent - registered < window)
            {
                var burst = Math.Min(packets.Count - sent, window - (int)(sent - registered));
                for (var i = 0; i < burst; i++)
                {
                    socket.SendTo(packets[sent++], target);
                }
            }
            else if (sent >= packets.Count && sw.Elapsed - lastProgress > TimeSpan.FromSeconds(1))
            {
                break; // datagrams lost: a replay does not retransmit
            }
            else
            {
                Thread.Yield();
            }

            while (socket.Available > 0)
            {
                socket.Receive(acks);
            }
        }

        return (counters.Registered - before, lastProgress.TotalSeconds);
    }

    /// <summary>The Register messages (as link payloads) that <paramref name="hosts"/> host controllers send when <paramref name="perHost"/> services each are bound.</summary>
    private static List<byte[]> GenerateRegisters(int hosts, int perHost, LinkAddress router)
    {
        var packets = new List<byte[]>(hosts * perHost);
        var sink = new CaptureSink(packets);
        for (var h = 0; h < hosts; h++)
        {
            var random = new SeededRandomSource((ulong)h + 1);
            var engine = new Engine(EngineOptions.Default, random);
            var index = engine.AddInterface(new InterfaceConfig { Name = "mem", Address = LinkAddress.FromIPv4(0x0A000000u + (uint)h + 2, ServalInfo.DefaultUdpPort), Mtu = 1500 });
            engine.SetInterfaceUp(index, true, Now0);
            var controller = new HostController(engine, HostControllerOptions.Default with { Routers = [new RouterEndpoint(router, index)], RefreshInterval = TimeSpan.FromMinutes(5), Lease = TimeSpan.FromMinutes(10) }, random);
            Check(controller.Start(Now0), "start");
            for (var s = 0; s < perHost; s++)
            {
                Check(engine.Listen(ServicePrefix.Exact(ServiceId.FromName($"bench.absorb.{h}.{s}")), TransportProtocol.Stream, 4, Now0, out _), "listen");
                if (s % 64 == 63 || s == perHost - 1)
                {
                    Flush(engine, controller, sink);
                }
            }
        }

        return packets;
    }

    private static void Flush(Engine engine, HostController controller, CaptureSink sink)
    {
        for (var round = 0; round < 4; round++)
        {
            while (engine.TryGetEvent(out var e))
            {
                controller.OnEvent(e, Now0);
            }

            controller.Poll(Now0);
            engine.Poll(Now0, sink);
        }
    }

    private static void Check(ServalError error, string what)
    {
        if (error != ServalError.None)
        {
            throw new InvalidOperationException($"{what}: {error}");
        }
    }

    private sealed class CaptureSink(List<byte[]> packets) : IPacketSink
    {
        public void Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) => packets.Add(packet.ToArray());
    }

    // ------------------------------------------------------------------------------------------------------------

    private static async Task<(double P50, double P99)> BindToRoutableAsync(int samples)
    {
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "router",
            Links = [new UdpLink(NextLoopback())],
            Engine = EngineOptions.Default with { Mode = EngineMode.ServiceRouter },
            RouterControl = RouterControllerOptions.Default,
        }).ConfigureAwait(false);
        var routerAddress = router.Links[0].LocalAddress;
        await using var replica = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "replica",
            Links = [new UdpLink(NextLoopback())],
            Engine = EngineOptions.Default with { TimeWait = TimeSpan.FromMilliseconds(200) },
            RegisterWithRouter = routerAddress,
        }).ConfigureAwait(false);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "client",
            Links = [new UdpLink(NextLoopback())],
            Engine = EngineOptions.Default with { TimeWait = TimeSpan.FromMilliseconds(200) },
            DefaultRouter = routerAddress,
        }).ConfigureAwait(false);

        var results = new List<double>(samples);
        var failures = 0;
        var run = Environment.ProcessId;
        for (var i = -10; i < samples; i++)
        {
            var service = ServiceId.FromName($"bench.bind.{run}.{i}");
            var ms = await OneSampleAsync(replica, client, service).ConfigureAwait(false);
            if (i < 0)
            {
                continue; // warm-up
            }

            if (ms is { } value)
            {
                results.Add(value);
            }
            else
            {
                failures++;
            }
        }

        if (results.Count == 0)
        {
            throw new InvalidOperationException("no sample became routable within 2 s");
        }

        results.Sort();
        var p50 = Percentile(results, 0.50);
        var p99 = Percentile(results, 0.99);
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"bind-to-routable: {results.Count} samples ({failures} not routable within 2 s): min {results[0]:F2} ms, p50 {p50:F2} ms, p99 {p99:F2} ms, max {results[^1]:F2} ms; client probes every ~1 ms; load average {LoadAverage()}"));
        return (p50, p99);
    }

    private static async Task<double?> OneSampleAsync(ServalHost replica, ServalHost client, ServiceId service)
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        var start = Stopwatch.GetTimestamp();
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = replica, ListenEndPoint = new ServiceEndPoint(service) }, stop.Token).ConfigureAwait(false);
        var accept = listener.AcceptConnectionAsync(stop.Token).AsTask();
        var acceptedAt = accept.ContinueWith(_ => Stopwatch.GetTimestamp(), TaskScheduler.Default);
        var probes = new List<Task>();
        while (!accept.IsCompleted && !stop.IsCancellationRequested)
        {
            probes.Add(ProbeAsync(client, service, stop.Token));
            await Task.WhenAny(accept, Task.Delay(1, stop.Token)).ConfigureAwait(false);
        }

        double? result = null;

        if (accept.IsCompletedSuccessfully)
        {
            result = Stopwatch.GetElapsedTime(start, await acceptedAt.ConfigureAwait(false)).TotalMilliseconds;
            await accept.Result.DisposeAsync().ConfigureAwait(false);
        }

        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(probes).ConfigureAwait(false);
        return result;
    }

    private static async Task ProbeAsync(ServalHost client, ServiceId service, CancellationToken stop)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(TimeSpan.FromMilliseconds(100));
        try
        {
            await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = service }, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or ServalException or IOException)
        {
        }
    }

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private static double Percentile(List<double> sorted, double q) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];
}
