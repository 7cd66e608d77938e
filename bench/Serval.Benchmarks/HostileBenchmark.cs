using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Serval.Links;
using Serval.Stack;
using Serval.Testing;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// <c>bench/run.sh hostile</c>: the stack under attack and over time. Four bounded parts: (1) a SYN flood from a plain
/// UDP socket against a real host on loopback while a legitimate client connects and echoes one byte in a loop;
/// (2) spoofed packets of nine kinds against an established flow between two engines in memory
/// (<see cref="SpoofBenchmark"/>); (3) the managed memory of released TIME-WAIT flows (<see cref="TimeWaitBenchmark"/>);
/// (4) a soak of concurrent connect / verified transfer / close cycles between real hosts (<see cref="ServalSoak"/>).
/// Settings from the environment: HOSTILE_FLOOD_SECONDS (10), HOSTILE_SPOOFS (1000000 per kind),
/// HOSTILE_TIMEWAIT_FLOWS (20000), HOSTILE_SOAK_SECONDS (600).
/// </summary>
internal static class HostileBenchmark
{
    private static readonly ServiceId Echo = ServiceId.FromName("bench.hostile.echo");
    private static readonly int Net = Random.Shared.Next(1, 250);
    private static int s_nextHost = 1;
    private static long s_flowFaults;

    private static IPAddress NextLoopback() => new([127, (byte)Net, 7, (byte)Interlocked.Increment(ref s_nextHost)]);

    private static int Env(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : fallback;

    /// <summary>Managed heap after full blocking, compacting collections.</summary>
    public static long Heap()
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        return GC.GetTotalMemory(forceFullCollection: true);
    }

    public static async Task<int> RunAsync(string[] args)
    {
        _ = args;
        var floodSeconds = Env("HOSTILE_FLOOD_SECONDS", 10);
        var spoofs = Env("HOSTILE_SPOOFS", 1_000_000);
        var timeWaitFlows = Env("HOSTILE_TIMEWAIT_FLOWS", 20_000);
        var soakSeconds = Env("HOSTILE_SOAK_SECONDS", 600);
        Console.Error.WriteLine($"hostile: flood {floodSeconds} s, {spoofs} spoofs per kind, {timeWaitFlows} TIME-WAIT flows, soak {soakSeconds} s (shorten with HOSTILE_SOAK_SECONDS=60)");

        Console.Error.WriteLine("[1/4] SYN flood");
        var flood = await FloodAsync(floodSeconds).ConfigureAwait(false);

        Console.Error.WriteLine("[2/4] spoofing an established flow (engines in memory)");
        var kinds = SpoofBenchmark.Run(spoofs, TimeSpan.FromSeconds(60));
        var spoofsSent = kinds.Sum(k => k.Sent);
        // Data in the window and pure ACKs carry no SAL control extension, so no nonce: the stack can reject them only by
        // sequence and acknowledgement checks, which a blind guess passes with a tiny probability (docs/stream-transport.md).
        // The last line's spoofs_accepted counts the kinds the stack can check; the other two are printed here.
        var probabilistic = kinds.Where(k => k.Kind is SpoofKind.DataInWindow or SpoofKind.ForgedAck).Sum(k => k.Accepted);
        var spoofsAccepted = kinds.Sum(k => k.Accepted) - probabilistic;
        s_flowFaults += kinds.Sum(k => k.Faults);
        Console.Error.WriteLine($"  spoofs: sent={spoofsSent} accepted (checkable kinds)={spoofsAccepted}; data_in_window + forged_ack, checkable only probabilistically: {probabilistic}");

        Console.Error.WriteLine("[3/4] TIME-WAIT memory (engines in memory)");
        var (perFlow, compact, twFaults) = TimeWaitBenchmark.Run(timeWaitFlows);
        s_flowFaults += twFaults;
        if (compact != timeWaitFlows)
        {
            Console.Error.WriteLine($"  CHECK FAILED: CompactTimeWaitCount={compact}, expected {timeWaitFlows}");
        }

        Console.Error.WriteLine($"[4/4] soak, {soakSeconds} s (HOSTILE_SOAK_SECONDS)");
        var (growth, soakOk) = await SoakAsync(soakSeconds).ConfigureAwait(false);

        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"hostile: synflood_pps={flood.Pps:F0} legit_success={flood.Success:F3} legit_p99_ms={flood.P99Ms:F3} spoofs_sent={spoofsSent} spoofs_accepted={spoofsAccepted} timewait_bytes_per_flow={perFlow:F3} soak_heap_growth={growth:F3} flow_faults={s_flowFaults}"));
        return compact == timeWaitFlows && soakOk ? 0 : 1;
    }

    // ------------------------------------------------------------------------------------------------------------

    private sealed record FloodResult(double Pps, double Success, double P99Ms);

    private static async Task<FloodResult> FloodAsync(int seconds)
    {
        long inboundDropped = -1;
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "Serval.Host" && instrument.Name == "serval.host.inbound_dropped" &&
                instrument.Meter.Tags?.Any(t => t.Key == "serval.host" && (t.Value as string) == "flood-server") == true)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meters.SetMeasurementEventCallback<long>((_, value, _, _) => inboundDropped = value);
        meters.Start();

        var serverAddress = NextLoopback();
        await using var server = await ServalHost.StartAsync(new ServalHostOptions { Name = "flood-server", Links = [new UdpLink(serverAddress)] }).ConfigureAwait(false);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "flood-client", Links = [new UdpLink(NextLoopback())] }).ConfigureAwait(false);
        using var stop = new CancellationTokenSource();
        await using var listener = await ServalEcho.ListenAsync(server, Echo, stop.Token).ConfigureAwait(false);
        var serverLink = server.Links[0].LocalAddress;

        // Warm-up: a few legitimate echoes before the flood.
        for (var i = 0; i < 20; i++)
        {
            await LegitEchoAsync(client, serverLink).ConfigureAwait(false);
        }

        var rcvbufBefore = UdpRcvbufErrors();
        long synsSent = 0, sendErrors = 0;
        var floodDone = false;
        var floodWatch = new Stopwatch();
        var attacker = new Thread(() =>
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            var attackerAddress = NextLoopback();
            socket.Bind(new IPEndPoint(attackerAddress, 0));
            var from = LinkAddress.FromEndPoint((IPEndPoint)socket.LocalEndPoint!);
            var to = new IPEndPoint(serverAddress, ServalInfo.DefaultUdpPort);
            var toAddress = to.Serialize();
            var pseudo = TransportPseudoHeader.ForLink(from, LinkAddress.FromEndPoint(to));
            var random = new Random(99);
            var buf = new byte[256];
            floodWatch.Start();
            var until = TimeSpan.FromSeconds(seconds);
            while (floodWatch.Elapsed < until)
            {
                for (var i = 0; i < 256; i++)
                {
                    var repr = new SalPacketRepr
                    {
                        SourceFlow = new FlowId((uint)random.Next(1, int.MaxValue)),
                        Protocol = SalPacketRepr.ProtocolTcp,
                        Control = new SalControl(SalControlFlags.Syn, (uint)random.Next(), 0, new Nonce((ulong)random.NextInt64())),
                        DestinationService = Echo,
                        Tcp = new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = (uint)random.Next(), Window = 65535, MaxSegmentSize = 1400, WindowScale = 7, SackPermitted = true },
                    };
                    var n = repr.Emit(buf, [], pseudo);
                    try
                    {
                        socket.SendTo(buf.AsSpan(0, n), SocketFlags.None, toAddress);
                        synsSent++;
                    }
                    catch (SocketException)
                    {
                        sendErrors++;
                    }
                }
            }

            floodWatch.Stop();
            Volatile.Write(ref floodDone, true);
        })
        { Name = "syn flood", IsBackground = true };

        var latencies = new List<double>();
        long attempts = 0, failures = 0;
        var failureKinds = new Dictionary<string, int>();
        attacker.Start();
        while (!Volatile.Read(ref floodDone))
        {
            attempts++;
            var (ok, ms, why) = await LegitEchoAsync(client, serverLink).ConfigureAwait(false);
            if (ok)
            {
                latencies.Add(ms);
            }
            else
            {
                failures++;
                failureKinds[why] = failureKinds.GetValueOrDefault(why) + 1;
            }
        }

        attacker.Join();
        var rcvbufAfter = UdpRcvbufErrors();
        meters.RecordObservableInstruments();
        var c = server.Counters;
        latencies.Sort();
        var p99 = latencies.Count == 0 ? double.NaN : latencies[Math.Min(latencies.Count - 1, (int)Math.Ceiling(latencies.Count * 0.99) - 1)];
        var p50 = latencies.Count == 0 ? double.NaN : latencies[latencies.Count / 2];
        var pps = synsSent / floodWatch.Elapsed.TotalSeconds;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  flood: {synsSent} SYNs in {floodWatch.Elapsed.TotalSeconds:F2} s ({pps:F0}/s), {sendErrors} send errors"));
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  legit: {attempts - failures}/{attempts} connect+echo succeeded; p50 {p50:F3} ms, p99 {p99:F3} ms, max {(latencies.Count > 0 ? latencies[^1] : double.NaN):F3} ms; failures: {(failureKinds.Count == 0 ? "none" : string.Join(", ", failureKinds.Select(kv => $"{kv.Key} x{kv.Value}")))}"));
        Console.Error.WriteLine($"  server: PacketsReceived={c.PacketsReceived} SynCookiesSent={c.SynCookiesSent} SynCookiesAccepted={c.SynCookiesAccepted} SynCookiesRejected={c.SynCookiesRejected} SynDropped={c.SynDropped} PendingEvicted={c.PendingEvicted} UnknownFlow={c.UnknownFlow} InboundDropped={inboundDropped} FlowFaults={c.FlowFaults}");
        Console.Error.WriteLine($"  kernel: UDP RcvbufErrors +{(rcvbufBefore < 0 || rcvbufAfter < 0 ? "n/a" : (rcvbufAfter - rcvbufBefore).ToString(CultureInfo.InvariantCulture))} (/proc/net/snmp, whole machine) during the flood; SYNs sent − received by the server engine: {synsSent - (c.PacketsReceived - client.Counters.PacketsSent)}");
        s_flowFaults += c.FlowFaults + client.Counters.FlowFaults;
        await stop.CancelAsync().ConfigureAwait(false);
        return new FloodResult(pps, attempts == 0 ? 0 : (double)(attempts - failures) / attempts, p99);
    }

    /// <summary>Connect (at most 3 s) + 1-byte echo (at most 3 s more) + close; the time of connect + echo.</summary>
    private static async Task<(bool Ok, double Ms, string Why)> LegitEchoAsync(ServalHost client, LinkAddress server)
    {
        var watch = Stopwatch.StartNew();
        ServalConnection connection;
        try
        {
            using var connectTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = server }, connectTimeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return (false, 0, "connect timed out (3 s)");
        }
        catch (ServalException e)
        {
            return (false, 0, "connect " + e.Error);
        }

        await using (connection.ConfigureAwait(false))
        {
            try
            {
                using var echoTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
                var stream = connection.GetStream();
                await stream.WriteAsync(new byte[] { 42 }, echoTimeout.Token).ConfigureAwait(false);
                var one = new byte[1];
                var n = await stream.ReadAsync(one, echoTimeout.Token).ConfigureAwait(false);
                if (n != 1 || one[0] != 42)
                {
                    return (false, 0, "echo wrong");
                }

                var ms = watch.Elapsed.TotalMilliseconds;
                stream.CompleteWrites();
                return (true, ms, string.Empty);
            }
            catch (OperationCanceledException)
            {
                return (false, 0, "echo timed out (3 s)");
            }
            catch (ServalException e)
            {
                return (false, 0, "echo " + e.Error);
            }
        }
    }

    /// <summary>The kernel's UDP RcvbufErrors counter (all sockets of the network namespace), or −1.</summary>
    private static long UdpRcvbufErrors()
    {
        try
        {
            var lines = File.ReadAllLines("/proc/net/snmp").Where(l => l.StartsWith("Udp:", StringComparison.Ordinal)).ToArray();
            var names = lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var values = lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var i = Array.IndexOf(names, "RcvbufErrors");
            return i < 0 ? -1 : long.Parse(values[i], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or IndexOutOfRangeException or FormatException)
        {
            return -1;
        }
    }

    // ------------------------------------------------------------------------------------------------------------

    private static async Task<(double Growth, bool Ok)> SoakAsync(int seconds)
    {
        // A short TIME-WAIT so that the end sample sees no flow of the run; everything else is the default.
        var engine = EngineOptions.Default with { TimeWait = TimeSpan.FromSeconds(5) };
        var hosts = new List<ServalHost>();
        var ok = true;
        try
        {
            for (var i = 0; i < 3; i++)
            {
                hosts.Add(await ServalHost.StartAsync(new ServalHostOptions { Name = i == 0 ? "soak-server" : $"soak-client-{i}", Links = [new UdpLink(NextLoopback())], Engine = engine }).ConfigureAwait(false));
            }

            using var stop = new CancellationTokenSource();
            await using var listener = await ServalEcho.ListenAsync(hosts[0], Echo, stop.Token).ConfigureAwait(false);
            var duration = TimeSpan.FromSeconds(seconds);
            var soak = ServalSoak.RunAsync(hosts.Skip(1).ToList(), loopsPerHost: 2, Echo, hosts[0].Links[0].LocalAddress, duration, seed: 7);
            var watch = Stopwatch.StartNew();
            long start = 0;
            for (var tenth = 1; tenth <= 9; tenth++)
            {
                var next = duration * tenth / 10;
                var wait = next - watch.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    await Task.WhenAny(soak, Task.Delay(wait)).ConfigureAwait(false);
                }

                var heap = Heap();
                if (tenth == 1)
                {
                    start = heap;
                }

                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  soak {watch.Elapsed.TotalSeconds:F0} s: heap {heap} bytes{(tenth == 1 ? " (start sample, after the 10 % warm-up)" : string.Empty)}"));
            }

            var result = await soak.ConfigureAwait(false);
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  soak: {result.Transfers} transfers verified ({result.Bytes / 1e6:F1} MB each way), {result.Failures} failed{(result.Errors.Count > 0 ? ": " + string.Join("; ", result.Errors.Take(5)) : string.Empty)}"));
            ok &= result.Failures == 0;

            // Every flow ends: no flow but compact TIME-WAIT records within 30 s, then the records expire (5 s).
            var ended = await ServalSoak.WaitAllAsync(hosts, async h => await ServalSoak.LiveFlowsAsync(h).ConfigureAwait(false) == 0, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            var expired = await ServalSoak.WaitAllAsync(hosts, async h => await h.GetFlowCountAsync().ConfigureAwait(false) == 0, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            foreach (var h in hosts)
            {
                Console.Error.WriteLine($"  {h.Name}: live flows {await ServalSoak.LiveFlowsAsync(h).ConfigureAwait(false)}, flows {await h.GetFlowCountAsync().ConfigureAwait(false)}, FlowFaults {h.Counters.FlowFaults}, UserTimeouts {h.Counters.UserTimeouts}, ResetsSent {h.Counters.ResetsSent}");
            }

            if (!ended || !expired)
            {
                Console.Error.WriteLine("  CHECK FAILED: stuck flows after the soak");
                ok = false;
            }

            var end = Heap();
            var growth = start == 0 ? double.NaN : (double)(end - start) / start;
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  soak heap: start {start} bytes, end {end} bytes (no flows left), growth {growth:F3}"));
            await stop.CancelAsync().ConfigureAwait(false);
            return (growth, ok);
        }
        finally
        {
            foreach (var h in hosts)
            {
                s_flowFaults += h.Counters.FlowFaults;
                await h.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
