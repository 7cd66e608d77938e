using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Serval.AspNetCore;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Experiments;

/// <summary>
/// Figure 7 (docs/evaluation.md): a replicated web service. ASP.NET Core instances (Kestrel over Serval through
/// Serval.AspNetCore, one process each, egress shaped by tbf to the same rate) register with one servald service router
/// by binding the service; clients (HttpClient over the Serval handler) keep requests for a large object in flight, one
/// connection per request, so every request's SYN is resolved by the router. Timeline: two instances; at P two more
/// bind; at 2P the first two stop gracefully (unbind, finish their transfers, exit); at 3P another binds; the run ends
/// at 4P (P = 60 s × scale). Then the same load through haproxy (TCP mode, on a host with the same link rate) in front
/// of four Kestrel-over-TCP instances.
/// </summary>
internal sealed class Fig7WebService : Experiment
{
    private const string ServiceName = "fig7.web";
    private const int TcpPort = 8080;

    public override string Name => "fig7";

    public override IReadOnlyDictionary<string, Func<string[], Task<int>>> Roles { get; } =
        new Dictionary<string, Func<string[], Task<int>>> { ["fig7-instance"] = InstanceAsync };

    public override async Task<int> RunAsync(ExperimentOptions options)
    {
        if (NetNamespace.UnsupportedReason is { } reason)
        {
            Console.Error.WriteLine($"fig7: cannot run: {reason}");
            return 2;
        }

        var rateMbps = options.GetDouble("rate-mbps", 20);
        var clients = (int)options.GetDouble("clients", 4);
        var inflight = (int)options.GetDouble("inflight", 20);
        var objectKiB = (int)options.GetDouble("object-kb", 3072);
        var haproxy = options.Get("haproxy", "1") != "0";
        var phase = TimeSpan.FromSeconds(60 * options.TimeScale);
        var haproxyRun = TimeSpan.FromSeconds(options.GetDouble("haproxy-seconds", 40) * options.TimeScale);
        var bin = TimeSpan.FromSeconds(Math.Clamp(options.TimeScale, 0.25, 1.0));
        const int Instances = 5;
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"fig7: {clients} clients x {inflight} requests in flight of {objectKiB} KiB; instances shaped to {rateMbps} Mbit/s; phases of {phase.TotalSeconds:F1} s; haproxy {(haproxy ? $"{haproxyRun.TotalSeconds:F1} s" : "off")}"));

        using var deadline = new CancellationTokenSource(phase * 4 + haproxyRun + TimeSpan.FromSeconds(240));
        var ct = deadline.Token;
        var servald = ExperimentPaths.Servald(options);

        // One bridge: host 0 the service router (and haproxy), 1..clients the clients, then the instances.
        await using var lan = BridgeLan.Create("f7", 71, 1 + clients + Instances);
        var routerNs = lan.Hosts[0];
        var routerAddress = lan.Address(0);
        var instanceNs = Enumerable.Range(0, Instances).Select(i => lan.Hosts[1 + clients + i]).ToArray();
        var instanceAddress = Enumerable.Range(0, Instances).Select(i => lan.Address(1 + clients + i)).ToArray();
        var queueMs = options.GetDouble("queue-ms", 100);
        foreach (var ns in instanceNs.Append(routerNs))
        {
            Shape(ns, "e0", rateMbps, queueMs);
        }

        var router = await NetnsServald.StartAsync(routerNs, servald, "fig7-router", [routerAddress.ToString()], ["--Serval:Mode=ServiceRouter"], ct);
        var instances = new ChildProcess[Instances];
        for (var i = 0; i < Instances; i++)
        {
            instances[i] = ChildProcess.StartRole(instanceNs[i], $"instance {i + 1}", "fig7-instance", [
                "--name", $"instance {i + 1}", "--serval", instanceAddress[i].ToString(), "--router", routerAddress.ToString(), "--object-kb", objectKiB.ToString(CultureInfo.InvariantCulture)]);
        }

        try
        {
            // Every instance process is started (and warm) before the timeline; "start" makes it bind the service, which
            // registers it with the router, at the time the timeline says.
            foreach (var instance in instances)
            {
                await instance.WaitForLineAsync("waiting", TimeSpan.FromSeconds(90), ct);
            }

            foreach (var i in (int[])[0, 1])
            {
                instances[i].Send("start");
                await instances[i].WaitForLineAsync("serving", TimeSpan.FromSeconds(30), ct);
            }

            await WaitForRegistrationsAsync(router, 2, ct);

            var meter = new LoadMeter();
            var hosts = new ServalHost[clients];
            var https = new HttpClient[clients];
            for (var c = 0; c < clients; c++)
            {
                var address = lan.Address(1 + c);
                hosts[c] = lan.Hosts[1 + c].Invoke(() => ServalHost.StartAsync(new ServalHostOptions
                {
                    Name = $"client {c + 1}",
                    Links = [new UdpLink(address)],
                    DefaultRouter = LinkAddress.FromIPAddress(routerAddress, NetnsServald.UdpPort),
                }).AsTask().GetAwaiter().GetResult());
                var handler = ServalHttp.CreateHandler(hosts[c]);
                handler.ConnectTimeout = TimeSpan.FromSeconds(10);
                https[c] = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
            }

            var figureRate = new Figure("fig7-rps", "Replicated web service: request rate (Serval service router vs haproxy)", "time (s)", "requests/s (3 MB objects)");
            var figureTput = new Figure("fig7", "Replicated web service: throughput (Serval service router vs haproxy)", "time (s)", "throughput (Mbit/s)");

            // --- Serval timeline -------------------------------------------------------------------------------
            using var load = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var clock = Stopwatch.StartNew();
            var loops = new List<Task>();
            for (var c = 0; c < clients; c++)
            {
                for (var k = 0; k < inflight; k++)
                {
                    loops.Add(RequestLoopAsync(https[c], new Uri($"http://{ServiceName}/object"), meter, load.Token));
                }
            }

            var sampler = meter.SampleAsync(clock, bin, phase * 4, load.Token);
            var drains = new List<Task>();
            await DelayUntilAsync(clock, phase, ct);
            instances[2].Send("start");
            instances[3].Send("start");
            figureTput.Mark(phase.TotalSeconds, "+2 instances (3, 4 bind)");
            figureRate.Mark(phase.TotalSeconds, "+2 instances (3, 4 bind)");
            await DelayUntilAsync(clock, phase * 2, ct);
            foreach (var i in (int[])[0, 1])
            {
                instances[i].RequestStop();
                var stopped = instances[i];
                drains.Add(Task.Run(async () =>
                {
                    var exited = await stopped.WaitForExitAsync(phase * 2);
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig7: {stopped.Name} {(exited ? "exited" : "killed")} at t={clock.Elapsed.TotalSeconds:F1} s; {stopped.Output.LastOrDefault(l => l.StartsWith("stopped", StringComparison.Ordinal))}"));
                }));
            }

            figureTput.Mark(phase.TotalSeconds * 2, "-2 instances (1, 2 stop gracefully)");
            figureRate.Mark(phase.TotalSeconds * 2, "-2 instances (1, 2 stop gracefully)");
            await DelayUntilAsync(clock, phase * 3, ct);
            instances[4].Send("start");
            figureTput.Mark(phase.TotalSeconds * 3, "+1 instance (5 binds)");
            figureRate.Mark(phase.TotalSeconds * 3, "+1 instance (5 binds)");
            var samples = await sampler;
            await load.CancelAsync();
            await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(30), ct);
            await Task.WhenAll(drains).WaitAsync(TimeSpan.FromSeconds(60), ct);
            foreach (var http in https)
            {
                http.Dispose();
            }

            foreach (var host in hosts)
            {
                await host.DisposeAsync();
            }

            foreach (var i in (int[])[2, 3, 4])
            {
                instances[i].RequestStop();
                await instances[i].WaitForExitAsync(TimeSpan.FromSeconds(20));
            }

            var routerStats = await router.RequestAsync(new JsonObject { ["op"] = "stats" }, ct);
            Console.Error.WriteLine($"fig7: Serval: {meter.Completed} requests completed, {meter.Failed} failed; router forwarded {routerStats["engine"]?["forwarded"]} packets");

            var names = samples.SelectMany(s => s.PerInstance.Keys).Distinct().Order(StringComparer.Ordinal).ToArray();
            AddSeries(figureTput, figureRate, samples, names, "Serval total", bin, 0);

            // Phase summaries over each phase's second half (the first half holds the changes and the draining).
            var phasesRps = new double[4];
            var phasesGbps = new double[4];
            var spread = 0.0;
            string[][] activeNames = [["instance 1", "instance 2"], ["instance 1", "instance 2", "instance 3", "instance 4"], ["instance 3", "instance 4"], ["instance 3", "instance 4", "instance 5"]];
            for (var p = 0; p < 4; p++)
            {
                var from = phase.TotalSeconds * (p + 0.5);
                var to = phase.TotalSeconds * (p + 1);
                var window = samples.Where(s => s.Time > from + 1e-9 && s.Time <= to + 1e-9).ToArray();
                var seconds = window.Length * bin.TotalSeconds;
                if (seconds <= 0)
                {
                    continue;
                }

                phasesRps[p] = window.Sum(s => s.PerInstance.Values.Sum(v => v.Completed)) / seconds;
                phasesGbps[p] = window.Sum(s => s.PerInstance.Values.Sum(v => v.Bytes)) * 8 / seconds / 1e9;
                var perInstance = activeNames[p].Select(n => window.Sum(s => s.PerInstance.TryGetValue(n, out var v) ? v.Bytes : 0)).ToArray();
                var mean = perInstance.Average();
                if (mean > 0)
                {
                    spread = Math.Max(spread, (perInstance.Max() - perInstance.Min()) / mean);
                }

                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig7: phase {p + 1} ({from:F0}-{to:F0} s): {phasesRps[p]:F2} req/s, {phasesGbps[p] * 1000:F1} Mbit/s; per instance Mbit/s: {string.Join(", ", activeNames[p].Zip(perInstance, (n, b) => $"{n} {b * 8 / seconds / 1e6:F1}"))}"));
            }

            // --- haproxy --------------------------------------------------------------------------------------
            double haproxyGbps = double.NaN;
            if (haproxy)
            {
                haproxyGbps = await RunHaproxyAsync(lan, clients, inflight, objectKiB, haproxyRun, bin, phase.TotalSeconds * 4, figureTput, figureRate, ct);
            }

            var written = figureTput.Save(options.OutputDirectory);
            figureRate.Save(options.OutputDirectory);
            Console.Error.WriteLine($"fig7: wrote {written.Csv}, {written.Png} and fig7-rps.csv/.png");

            // Valid when the throughput follows the instances (a 3 MB request takes tens of seconds at the scaled rates, so
            // the request rate lags the throughput and only has to rise when instances join).
            var valid = phasesGbps[1] > 1.3 * phasesGbps[0] && phasesGbps[2] < 0.85 * phasesGbps[1] && phasesGbps[3] > 1.15 * phasesGbps[2]
                && phasesRps[1] > phasesRps[0] && phasesRps[3] > phasesRps[2] && (!haproxy || haproxyGbps > 0);
            if (!valid)
            {
                Console.Error.WriteLine("fig7: INVALID: the throughput does not follow the number of instances (2 -> 4 -> 2 -> 3: +30 %, -15 %, +15 % at least), the request rate does not rise with it, or haproxy served nothing");
            }

            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"fig7: phases_rps={string.Join(',', phasesRps.Select(r => r.ToString("F1", CultureInfo.InvariantCulture)))} phases_gbps={string.Join(',', phasesGbps.Select(r => r.ToString("F3", CultureInfo.InvariantCulture)))} per_instance_spread={spread:F2} haproxy_gbps={(haproxy ? haproxyGbps.ToString("F3", CultureInfo.InvariantCulture) : "NA")}"));
            return valid ? 0 : 1;
        }
        finally
        {
            foreach (var instance in instances)
            {
                instance.Kill();
            }

            await router.KillAsync();
            router.DeleteSocket();
        }
    }

    /// <summary>The haproxy run: four Kestrel-over-TCP instances behind haproxy on the router's host; returns its Gbit/s.</summary>
    private static async Task<double> RunHaproxyAsync(
        BridgeLan lan, int clients, int inflight, int objectKiB, TimeSpan duration, TimeSpan bin, double offset, Figure tput, Figure rate, CancellationToken ct)
    {
        EnsureHaproxy();
        var routerAddress = lan.Address(0);
        var backends = new ChildProcess[4];
        var config = Path.Combine(Path.GetTempPath(), $"fig7-haproxy-{Environment.ProcessId}.cfg");
        var lines = new List<string>
        {
            "global", "    maxconn 4096",
            "defaults", "    mode tcp", "    timeout connect 5s", "    timeout client 10m", "    timeout server 10m",
            "frontend web", $"    bind {routerAddress}:{TcpPort}", "    default_backend instances",
            "backend instances", "    balance roundrobin",
        };
        for (var i = 0; i < backends.Length; i++)
        {
            var address = lan.Address(1 + clients + i);
            lines.Add($"    server i{i + 1} {address}:{TcpPort}");
            backends[i] = ChildProcess.StartRole(lan.Hosts[1 + clients + i], $"tcp instance {i + 1}", "fig7-instance", [
                "--name", $"instance {i + 1}", "--tcp", $"{address}:{TcpPort}", "--object-kb", objectKiB.ToString(CultureInfo.InvariantCulture)]);
        }

        await File.WriteAllLinesAsync(config, lines, ct);
        ChildProcess? proxy = null;
        var https = new List<HttpClient>();
        try
        {
            foreach (var b in backends)
            {
                await b.WaitForLineAsync("waiting", TimeSpan.FromSeconds(90), ct);
                b.Send("start");
                await b.WaitForLineAsync("serving", TimeSpan.FromSeconds(30), ct);
            }

            proxy = ChildProcess.Start(lan.Hosts[0], "haproxy", "haproxy", ["-db", "-f", config]);
            var clock = Stopwatch.StartNew();
            while (!lan.Hosts[0].Exec("ss", "-ltnH", $"sport = :{TcpPort}").Contains(':', StringComparison.Ordinal))
            {
                if (proxy.HasExited || clock.Elapsed > TimeSpan.FromSeconds(10))
                {
                    throw new InvalidOperationException($"haproxy is not listening on {routerAddress}:{TcpPort}:{Environment.NewLine}{proxy.Describe()}");
                }

                await Task.Delay(50, ct);
            }

            var meter = new LoadMeter();
            using var load = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var loops = new List<Task>();
            for (var c = 0; c < clients; c++)
            {
                var ns = lan.Hosts[1 + c];
                var handler = new SocketsHttpHandler
                {
                    ConnectTimeout = TimeSpan.FromSeconds(10),
                    ConnectCallback = async (context, token) =>
                    {
                        // The socket is created inside the client's namespace (a socket belongs to the namespace it was made in).
                        var socket = ns.Invoke(() => new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true });
                        try
                        {
                            await socket.ConnectAsync(context.DnsEndPoint, token);
                            return new NetworkStream(socket, ownsSocket: true);
                        }
                        catch
                        {
                            socket.Dispose();
                            throw;
                        }
                    },
                };
                var http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
                https.Add(http);
                for (var k = 0; k < inflight; k++)
                {
                    loops.Add(RequestLoopAsync(http, new Uri($"http://{routerAddress}:{TcpPort}/object"), meter, load.Token));
                }
            }

            var samples = await meter.SampleAsync(Stopwatch.StartNew(), bin, duration, load.Token);
            await load.CancelAsync();
            await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(30), ct);
            Console.Error.WriteLine($"fig7: haproxy: {meter.Completed} requests completed, {meter.Failed} failed");
            tput.Mark(offset, "haproxy in front of 4 TCP instances");
            rate.Mark(offset, "haproxy in front of 4 TCP instances");
            foreach (var s in samples)
            {
                tput.Add("haproxy total", offset + s.Time, s.PerInstance.Values.Sum(v => v.Bytes) * 8 / bin.TotalSeconds / 1e6);
            }

            AddRateSeries(rate, samples, "haproxy total", bin, offset, null);

            // Steady state: the last three quarters of the run.
            var window = samples.Where(s => s.Time > duration.TotalSeconds / 4 + 1e-9).ToArray();
            var seconds = window.Length * bin.TotalSeconds;
            var gbps = seconds > 0 ? window.Sum(s => s.PerInstance.Values.Sum(v => v.Bytes)) * 8 / seconds / 1e9 : 0;
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig7: haproxy: {gbps * 1000:F1} Mbit/s, {(seconds > 0 ? window.Sum(s => s.PerInstance.Values.Sum(v => v.Completed)) / seconds : 0):F2} req/s in the steady state"));
            return gbps;
        }
        finally
        {
            foreach (var http in https)
            {
                http.Dispose();
            }

            proxy?.Kill();
            foreach (var b in backends)
            {
                b.Kill();
            }

            File.Delete(config);
        }
    }

    private static void AddSeries(Figure tput, Figure rate, IReadOnlyList<LoadSample> samples, string[] names, string total, TimeSpan bin, double offset)
    {
        foreach (var s in samples)
        {
            tput.Add(total, offset + s.Time, s.PerInstance.Values.Sum(v => v.Bytes) * 8 / bin.TotalSeconds / 1e6);
            foreach (var n in names)
            {
                tput.Add(n, offset + s.Time, (s.PerInstance.TryGetValue(n, out var v) ? v.Bytes : 0) * 8 / bin.TotalSeconds / 1e6);
            }
        }

        AddRateSeries(rate, samples, total, bin, offset, null);
        foreach (var n in names)
        {
            AddRateSeries(rate, samples, n, bin, offset, n);
        }
    }

    /// <summary>Request rate: completions over a sliding window of five bins (a 3 MB object completes rarely per bin).</summary>
    private static void AddRateSeries(Figure rate, IReadOnlyList<LoadSample> samples, string series, TimeSpan bin, double offset, string? instance)
    {
        const int Window = 5;
        for (var i = 0; i < samples.Count; i++)
        {
            var from = Math.Max(0, i - Window + 1);
            long done = 0;
            for (var j = from; j <= i; j++)
            {
                done += instance is null
                    ? samples[j].PerInstance.Values.Sum(v => v.Completed)
                    : samples[j].PerInstance.TryGetValue(instance, out var v) ? v.Completed : 0;
            }

            rate.Add(series, offset + samples[i].Time, done / ((i - from + 1) * bin.TotalSeconds));
        }
    }

    private static async Task RequestLoopAsync(HttpClient http, Uri uri, LoadMeter meter, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        while (!ct.IsCancellationRequested)
        {
            try
            {
                // One connection per request (as the paper's benchmark without keep-alive): every SYN is resolved anew.
                using var request = new HttpRequestMessage(HttpMethod.Get, uri);
                request.Headers.ConnectionClose = true;
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                response.EnsureSuccessStatusCode();
                var instance = response.Headers.TryGetValues("X-Instance", out var values) ? values.First() : "unknown";
                var counter = meter.For(instance);
                var expected = response.Content.Headers.ContentLength ?? -1;
                long received = 0;
                await using var body = await response.Content.ReadAsStreamAsync(ct);
                int n;
                while ((n = await body.ReadAsync(buffer, ct)) > 0)
                {
                    received += n;
                    Interlocked.Add(ref counter.Bytes, n);
                }

                if (received == expected)
                {
                    Interlocked.Increment(ref counter.Completed);
                }
                else
                {
                    meter.Fail($"short body: {received} of {expected} bytes");
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is HttpRequestException or IOException or ServalException or OperationCanceledException)
            {
                meter.Fail(e.GetBaseException().Message);
                await Task.Delay(50, CancellationToken.None);
            }
        }
    }

    private static async Task WaitForRegistrationsAsync(NetnsServald router, int count, CancellationToken ct)
    {
        var service = ServiceId.FromName(ServiceName).ToString();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var answer = await router.RequestAsync(new JsonObject { ["op"] = "router.registrations" }, ct);
            var active = answer["registrations"]?.AsArray().Count(r => r?["service"]?.GetValue<string>() == service && r?["state"]?.GetValue<string>() == "active") ?? 0;
            if (active >= count)
            {
                return;
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException($"the router holds {active} of {count} registrations of {ServiceName}: {answer.ToJsonString()}");
            }

            await Task.Delay(50, ct);
        }
    }

    internal static void Shape(NetNamespace ns, string device, double rateMbps, double queueMs)
    {
        ns.Ip("link", "set", "dev", device, "txqueuelen", "1000");
        ns.Exec("tc", "qdisc", "replace", "dev", device, "root", "tbf", "rate", string.Create(CultureInfo.InvariantCulture, $"{rateMbps}mbit"), "burst", "64kb", "latency", string.Create(CultureInfo.InvariantCulture, $"{queueMs}ms"));
    }

    internal static async Task DelayUntilAsync(Stopwatch clock, TimeSpan at, CancellationToken ct)
    {
        var left = at - clock.Elapsed;
        if (left > TimeSpan.Zero)
        {
            await Task.Delay(left, ct);
        }
    }

    private static void EnsureHaproxy()
    {
        if (File.Exists("/usr/sbin/haproxy") || File.Exists("/usr/bin/haproxy"))
        {
            return;
        }

        Console.Error.WriteLine("fig7: installing haproxy (apt-get)");
        foreach (var args in (string[][])[["update"], ["install", "-y", "haproxy"]])
        {
            var info = new ProcessStartInfo("apt-get") { UseShellExecute = false };
            foreach (var a in args)
            {
                info.ArgumentList.Add(a);
            }

            info.Environment["DEBIAN_FRONTEND"] = "noninteractive";
            using var p = Process.Start(info)!;
            p.WaitForExit();
        }
    }

    /// <summary>
    /// <c>fig7-instance --name N (--serval ADDR --router ADDR | --tcp ADDR:PORT) --object-kb K</c>: a Kestrel app serving
    /// GET /object (K KiB, header X-Instance: N). It starts, writes <c>waiting</c>, and binds on the command <c>start</c>
    /// (over Serval: the bind registers the service with the router); on <c>stop</c> it stops gracefully (unbinds, lets
    /// the transfers in progress finish) and exits.
    /// </summary>
    private static async Task<int> InstanceAsync(string[] args)
    {
        var a = ExperimentPaths.ParseArgs(args);
        var name = a["name"];
        var body = new byte[int.Parse(a["object-kb"], CultureInfo.InvariantCulture) * 1024];
        new Random(7).NextBytes(body);
        ServalHost? host = null;
        if (a.TryGetValue("serval", out var serval))
        {
            host = await ServalHost.StartAsync(new ServalHostOptions
            {
                Name = name,
                Links = [new UdpLink(IPAddress.Parse(serval))],
                RegisterWithRouter = LinkAddress.FromIPAddress(IPAddress.Parse(a["router"]), NetnsServald.UdpPort),
            });
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromMinutes(5));
        if (host is not null)
        {
            builder.WebHost.UseServal(host);
        }

        builder.WebHost.ConfigureKestrel(o =>
        {
            if (host is not null)
            {
                o.ListenServal(new ServiceEndPoint(ServiceId.FromName(ServiceName)));
            }
            else
            {
                o.Listen(IPEndPoint.Parse(a["tcp"]));
            }
        });
        await using var app = builder.Build();
        long served = 0;
        app.MapGet("/object", async (HttpContext context) =>
        {
            context.Response.Headers["X-Instance"] = name;
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = body.Length;
            for (var offset = 0; offset < body.Length; offset += 64 * 1024)
            {
                await context.Response.Body.WriteAsync(body.AsMemory(offset, Math.Min(64 * 1024, body.Length - offset)), context.RequestAborted);
            }

            Interlocked.Increment(ref served);
        });

        Console.WriteLine("waiting");
        if (await ExperimentPaths.WaitForCommandAsync("start", "stop") == "stop")
        {
            return 0;
        }

        await app.StartAsync();
        Console.WriteLine("serving");
        await ExperimentPaths.WaitForCommandAsync("stop");
        var clock = Stopwatch.StartNew();
        await app.StopAsync();
        var kestrel = clock.Elapsed;
        if (host is not null)
        {
            // Kestrel is done with a response once its last bytes are in the connection's send buffer; the flow then
            // still sends them and closes (FIN). Disposing the host before would reset those flows: wait until every
            // flow has finished (TIME-WAIT or closed), at most the shutdown timeout.
            while (clock.Elapsed < TimeSpan.FromMinutes(5)
                && (await host.GetFlowsAsync()).Any(f => f.State is not (SalState.TimeWait or SalState.Closed)))
            {
                await Task.Delay(100);
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stopped: served {Interlocked.Read(ref served)} requests; Kestrel stopped in {kestrel.TotalSeconds:F1} s, the last transfer ended after {clock.Elapsed.TotalSeconds:F1} s"));
        if (host is not null)
        {
            await host.DisposeAsync();
        }

        return 0;
    }
}

/// <summary>One bin of the load: per instance, bytes received and requests completed.</summary>
internal sealed record LoadSample(double Time, IReadOnlyDictionary<string, (long Bytes, long Completed)> PerInstance);

/// <summary>Counts the clients' bytes and completed requests per instance, and samples them in bins.</summary>
internal sealed class LoadMeter
{
    private readonly ConcurrentDictionary<string, Counter> _counters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _failures = new(StringComparer.Ordinal);
    private long _failed;

    public long Failed => Interlocked.Read(ref _failed);

    public long Completed => _counters.Values.Sum(c => Interlocked.Read(ref c.Completed));

    public Counter For(string instance) => _counters.GetOrAdd(instance, _ => new Counter());

    public void Fail(string reason)
    {
        Interlocked.Increment(ref _failed);
        if (_failures.AddOrUpdate(reason, 1, (_, n) => n + 1) == 1)
        {
            Console.Error.WriteLine($"  request failed: {reason}");
        }
    }

    /// <summary>Samples every <paramref name="bin"/> until <paramref name="duration"/> on <paramref name="clock"/>.</summary>
    public async Task<IReadOnlyList<LoadSample>> SampleAsync(Stopwatch clock, TimeSpan bin, TimeSpan duration, CancellationToken ct)
    {
        var samples = new List<LoadSample>();
        var last = new Dictionary<string, (long Bytes, long Completed)>(StringComparer.Ordinal);
        for (var k = 1; k * bin <= duration + TimeSpan.FromMilliseconds(1); k++)
        {
            await Fig7WebService.DelayUntilAsync(clock, k * bin, ct);
            var now = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
            foreach (var (name, c) in _counters)
            {
                var current = (Interlocked.Read(ref c.Bytes), Interlocked.Read(ref c.Completed));
                var before = last.TryGetValue(name, out var b) ? b : (0, 0);
                now[name] = (current.Item1 - before.Item1, current.Item2 - before.Item2);
                last[name] = current;
            }

            samples.Add(new LoadSample((k * bin).TotalSeconds, now));
        }

        return samples;
    }

    internal sealed class Counter
    {
        public long Bytes;
        public long Completed;
    }
}
