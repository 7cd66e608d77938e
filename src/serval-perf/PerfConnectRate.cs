using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Perf;

/// <summary>A connect-rate test: over Serval (<see cref="Common"/> set) or kernel TCP (<see cref="Tcp"/> set).</summary>
internal sealed record ConnectRateSettings
{
    /// <summary>Serval: links and service; null for the kernel TCP variant.</summary>
    public CommonSettings? Common { get; init; }

    /// <summary>Serval: where the service's SYNs go (a service router or a server).</summary>
    public LinkAddress Peer { get; init; }

    /// <summary>Serval: 1-based index of the link the peer is reached through.</summary>
    public int PeerLink { get; init; }

    public bool Advisory { get; init; }

    /// <summary>Kernel TCP: the server (or load balancer) to connect to.</summary>
    public IPEndPoint? Tcp { get; init; }

    public int Parallel { get; init; } = 64;

    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>After connecting, send <see cref="PerfProtocol.ProbeByte"/> and wait for the server's echo.</summary>
    public bool Echo { get; init; }

    /// <summary>Most connections started in all (the loops also stop at the deadline).</summary>
    public long MaxConnections { get; init; } = 10_000_000;

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Loops run this long before the measured <see cref="Duration"/>; those attempts are not recorded.</summary>
    public TimeSpan Warmup { get; init; }

    public bool Json { get; init; }
}

/// <summary>
/// <c>serval-perf connect-rate</c>: <see cref="ConnectRateSettings.Parallel"/> loops, each connecting, optionally
/// exchanging one byte, and closing, until the deadline. Every attempt's latency is kept (exact percentiles); failures
/// are counted by error. The rate counts the connections that succeeded by the deadline over the duration.
/// </summary>
internal static class PerfConnectRate
{
    private static readonly double[] s_bucketsMs = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

    public static async Task<int> RunAsync(ConnectRateSettings settings, TextWriter output, TextWriter error, CancellationToken ct)
    {
        if (settings.Common is null)
        {
            var result = await RunLoopsAsync(settings, null, ct).ConfigureAwait(false);
            Write(result, settings, output);
            return 0;
        }

        ServalHost host;
        try
        {
            host = await settings.Common.StartHostAsync("serval-perf-connect-rate", ct).ConfigureAwait(false);
        }
        catch (PerfException e)
        {
            await error.WriteLineAsync($"serval-perf connect-rate: {e.Message}").ConfigureAwait(false);
            return 1;
        }

        await using (host.ConfigureAwait(false))
        {
            if (!settings.Advisory)
            {
                var target = ServiceTarget.Forward(settings.Peer, settings.PeerLink);
                try
                {
                    await host.Admin.AddRuleAsync(ServicePrefix.Exact(settings.Common.Service), target, cancellationToken: ct).ConfigureAwait(false);
                }
                catch (ServalException e)
                {
                    await error.WriteLineAsync($"serval-perf connect-rate: cannot add the FORWARD rule to {settings.Peer}: {e.Error}").ConfigureAwait(false);
                    return 1;
                }
            }

            var result = await RunLoopsAsync(settings, host, ct).ConfigureAwait(false);
            result["engine"] = EngineCountersJson(host.Counters);
            result["links"] = LinksJson(host);
            Write(result, settings, output);
            return 0;
        }
    }

    private static void Write(JsonObject result, ConnectRateSettings settings, TextWriter output)
    {
        if (settings.Json)
        {
            output.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return;
        }

        var inv = CultureInfo.InvariantCulture;
        var latency = result["latency_ms"]!;
        output.WriteLine(string.Create(inv, $"serval-perf connect-rate: {result["transport"]} to {result["peer"]}, {settings.Parallel} loop(s), {(settings.Echo ? "connect + 1-byte echo + close" : "connect + close")}"));
        output.WriteLine(string.Create(inv, $"  {(long)result["connections"]!} connections in {(double)result["seconds"]!:0.00} s: {(double)result["connections_per_second"]!:0.0}/s, {(long)result["failed"]!} failed"));
        output.WriteLine(string.Create(inv, $"  latency ms: p50 {(double)latency["p50"]!:0.000}  p90 {(double)latency["p90"]!:0.000}  p99 {(double)latency["p99"]!:0.000}  p99.9 {(double)latency["p999"]!:0.000}  max {(double)latency["max"]!:0.000}"));
        foreach (var (name, count) in result["failures"]!.AsObject())
        {
            output.WriteLine(string.Create(inv, $"  failed: {name} {(long)count!}"));
        }

        foreach (var bucket in result["histogram"]!.AsArray())
        {
            output.WriteLine(string.Create(inv, $"  <= {bucket!["le_ms"]} ms: {(long)bucket["count"]!}"));
        }
    }

    private sealed class LoopResult
    {
        public List<double> LatencyMs { get; } = [];

        public List<double> ConnectMs { get; } = [];

        public long SucceededByDeadline { get; set; }

        public Dictionary<string, long> Failures { get; } = [];

        public long WarmupConnections { get; set; }

        public long WarmupFailed { get; set; }
    }

    private static async Task<JsonObject> RunLoopsAsync(ConnectRateSettings settings, ServalHost? host, CancellationToken ct)
    {
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var warmupEnd = Stopwatch.GetTimestamp() + (long)(settings.Warmup.TotalSeconds * Stopwatch.Frequency);
        var deadline = warmupEnd + (long)(settings.Duration.TotalSeconds * Stopwatch.Frequency);
        long budget = settings.MaxConnections;
        var loops = await Task.WhenAll(Enumerable.Range(0, settings.Parallel).Select(_ => Task.Run(
            () => LoopAsync(settings, host, warmupEnd, deadline, () => Interlocked.Decrement(ref budget) >= 0, ct),
            CancellationToken.None))).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(warmupEnd).TotalSeconds;
        cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;

        var latencies = loops.SelectMany(l => l.LatencyMs).Order().ToArray();
        var connects = loops.SelectMany(l => l.ConnectMs).Order().ToArray();
        var failures = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, count) in loops.SelectMany(l => l.Failures))
        {
            failures[name] = failures.GetValueOrDefault(name) + count;
        }

        var succeeded = loops.Sum(l => l.SucceededByDeadline);
        var seconds = Math.Min(elapsed, settings.Duration.TotalSeconds);
        var histogram = new JsonArray();
        var index = 0;
        foreach (var le in s_bucketsMs)
        {
            var count = 0L;
            while (index < latencies.Length && latencies[index] <= le)
            {
                count++;
                index++;
            }

            histogram.Add(new JsonObject { ["le_ms"] = le, ["count"] = count });
        }

        histogram.Add(new JsonObject { ["le_ms"] = "inf", ["count"] = (long)(latencies.Length - index) });
        var failureJson = new JsonObject();
        foreach (var (name, count) in failures)
        {
            failureJson[name] = count;
        }

        return new JsonObject
        {
            ["role"] = "client",
            ["mode"] = "connect-rate",
            ["transport"] = host is null ? "tcp" : "serval",
            ["service"] = settings.Common?.ServiceText,
            ["peer"] = host is null ? settings.Tcp!.ToString() : settings.Peer.ToString(),
            ["parallel"] = settings.Parallel,
            ["echo"] = settings.Echo,
            ["seconds"] = Math.Round(seconds, 6),
            ["elapsed_seconds"] = Math.Round(elapsed, 6),
            ["connections"] = (long)latencies.Length,
            ["connections_by_deadline"] = succeeded,
            ["connections_per_second"] = seconds > 0 ? Math.Round(succeeded / seconds, 1) : 0,
            ["failed"] = failures.Values.Sum(),
            ["failures"] = failureJson,
            ["warmup_seconds"] = settings.Warmup.TotalSeconds,
            ["warmup_connections"] = loops.Sum(l => l.WarmupConnections),
            ["warmup_failed"] = loops.Sum(l => l.WarmupFailed),
            ["latency_ms"] = Percentiles(latencies),
            ["connect_ms"] = Percentiles(connects),
            ["histogram"] = histogram,
            ["cpu_seconds"] = Math.Round(cpu.TotalSeconds, 3),
        };
    }

    private static JsonObject Percentiles(double[] sorted) => new()
    {
        ["p50"] = Round(Percentile(sorted, 0.50)),
        ["p90"] = Round(Percentile(sorted, 0.90)),
        ["p99"] = Round(Percentile(sorted, 0.99)),
        ["p999"] = Round(Percentile(sorted, 0.999)),
        ["max"] = Round(sorted.Length > 0 ? sorted[^1] : 0),
        ["mean"] = Round(sorted.Length > 0 ? sorted.Average() : 0),
    };

    private static double Round(double v) => Math.Round(v, 3);

    /// <summary>Nearest-rank percentile of sorted values (0 when there are none).</summary>
    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static async Task<LoopResult> LoopAsync(ConnectRateSettings settings, ServalHost? host, long warmupEnd, long deadline, Func<bool> take, CancellationToken ct)
    {
        var result = new LoopResult();
        var buffer = new byte[64];
        while (Stopwatch.GetTimestamp() < deadline && !ct.IsCancellationRequested && take())
        {
            var t0 = Stopwatch.GetTimestamp();
            string? failure;
            double connectMs, totalMs;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                timeout.CancelAfter(settings.ConnectTimeout);
                (failure, connectMs, totalMs) = host is null
                    ? await TcpOnceAsync(settings, buffer, t0, timeout.Token).ConfigureAwait(false)
                    : await ServalOnceAsync(settings, host, buffer, t0, timeout.Token).ConfigureAwait(false);
            }

            var done = Stopwatch.GetTimestamp();
            if (ct.IsCancellationRequested)
            {
                break;
            }

            if (t0 < warmupEnd)
            {
                if (failure is null)
                {
                    result.WarmupConnections++;
                }
                else
                {
                    result.WarmupFailed++;
                }
            }
            else if (failure is not null)
            {
                result.Failures[failure] = result.Failures.GetValueOrDefault(failure) + 1;
            }
            else
            {
                RecordSuccess(result, connectMs, totalMs, done <= deadline);
            }

            if (failure is not null)
            {
                // A failure that returns at once (no route, refused) must not spin the loop.
                await Task.Delay(10, CancellationToken.None).ConfigureAwait(false);
            }
        }

        return result;
    }

    private static void RecordSuccess(LoopResult result, double connectMs, double totalMs, bool byDeadline)
    {
        result.LatencyMs.Add(totalMs);
        result.ConnectMs.Add(connectMs);
        if (byDeadline)
        {
            result.SucceededByDeadline++;
        }
    }

    private static async Task<(string? Failure, double ConnectMs, double TotalMs)> ServalOnceAsync(ConnectRateSettings settings, ServalHost host, byte[] buffer, long t0, CancellationToken ct)
    {
        ServalConnection connection;
        try
        {
            connection = await ServalConnection.ConnectAsync(
                new ServalConnectionOptions { Host = host, Service = settings.Common!.Service, AdvisoryAddress = settings.Advisory ? settings.Peer : default },
                ct).ConfigureAwait(false);
        }
        catch (Exception e) when (Classify(e, ct) is { } name)
        {
            return ("connect_" + name, 0, 0);
        }

        var connectMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        await using (connection.ConfigureAwait(false))
        {
            if (!settings.Echo)
            {
                return (null, connectMs, connectMs);
            }

            try
            {
                var stream = connection.GetStream();
                buffer[0] = PerfProtocol.ProbeByte;
                await stream.WriteAsync(buffer.AsMemory(0, 1), ct).ConfigureAwait(false);
                var n = await stream.ReadAsync(buffer.AsMemory(0, 1), ct).ConfigureAwait(false);
                return (n == 1 && buffer[0] == PerfProtocol.ProbeByte ? null : "echo_missing", connectMs, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
            catch (Exception e) when (Classify(e, ct) is { } name)
            {
                return ("echo_" + name, connectMs, 0);
            }
        }
    }

    private static async Task<(string? Failure, double ConnectMs, double TotalMs)> TcpOnceAsync(ConnectRateSettings settings, byte[] buffer, long t0, CancellationToken ct)
    {
        using var socket = new Socket(settings.Tcp!.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(settings.Tcp, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (Classify(e, ct) is { } name)
        {
            return ("connect_" + name, 0, 0);
        }

        var connectMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        if (!settings.Echo)
        {
            return (null, connectMs, connectMs);
        }

        try
        {
            buffer[0] = PerfProtocol.ProbeByte;
            await socket.SendAsync(buffer.AsMemory(0, 1), SocketFlags.None, ct).ConfigureAwait(false);
            var n = await socket.ReceiveAsync(buffer.AsMemory(0, 1), SocketFlags.None, ct).ConfigureAwait(false);
            return (n == 1 && buffer[0] == PerfProtocol.ProbeByte ? null : "echo_missing", connectMs, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        catch (Exception e) when (Classify(e, ct) is { } name)
        {
            return ("echo_" + name, connectMs, 0);
        }
    }

    /// <summary>A failure's name (<c>timeout</c>, a Serval or socket error), or null for the run's own cancellation.</summary>
    private static string? Classify(Exception e, CancellationToken attempt) => e switch
    {
        OperationCanceledException when attempt.IsCancellationRequested => "timeout",
        OperationCanceledException => null,
        ServalException s => s.Error.ToString(),
        SocketException s => s.SocketErrorCode.ToString(),
        IOException { InnerException: SocketException s } => s.SocketErrorCode.ToString(),
        IOException or ObjectDisposedException => e.GetType().Name,
        _ => null,
    };

    /// <summary>Every non-zero engine counter (the names servalctl stats uses).</summary>
    public static JsonObject EngineCountersJson(EngineCounters counters)
    {
        var engine = new JsonObject();
        foreach (var p in typeof(EngineCounters).GetProperties())
        {
            if (p.GetValue(counters) is long l && l != 0)
            {
                engine[char.ToLowerInvariant(p.Name[0]) + p.Name[1..]] = l;
            }
        }

        return engine;
    }

    private static JsonArray LinksJson(ServalHost host)
    {
        var links = new JsonArray();
        foreach (var l in host.Links)
        {
            var c = l.Counters;
            links.Add(new JsonObject
            {
                ["name"] = l.Name,
                ["packets_sent"] = c.PacketsSent,
                ["packets_received"] = c.PacketsReceived,
                ["send_errors"] = c.SendErrors,
                ["receive_dropped"] = c.ReceiveDropped,
            });
        }

        return links;
    }
}

/// <summary>
/// <c>serval-perf server --tcp ADDRESS:PORT</c>: the kernel TCP side of connect-rate tests. Every accepted connection
/// echoes a <see cref="PerfProtocol.ProbeByte"/> if the client sends one, and is closed when the client closes.
/// </summary>
internal static class PerfTcpServer
{
    private static readonly TimeSpan s_idleTimeout = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(IPEndPoint endPoint, TextWriter error, CancellationToken ct)
    {
        using var listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Bind(endPoint);
            listener.Listen(4096);
        }
        catch (SocketException e)
        {
            await error.WriteLineAsync($"serval-perf server: cannot listen on tcp {endPoint}: {e.Message}").ConfigureAwait(false);
            return 1;
        }

        await error.WriteLineAsync($"serval-perf server: listening for connect-rate probes on tcp {listener.LocalEndPoint}").ConfigureAwait(false);
        await error.FlushAsync(ct).ConfigureAwait(false);
        long accepted = 0;
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                break;
            }

            accepted++;
            _ = Task.Run(() => ServeAsync(socket, ct), CancellationToken.None);
        }

        await error.WriteLineAsync($"serval-perf server: accepted {accepted} tcp connections").ConfigureAwait(false);
        return 0;
    }

    private static async Task ServeAsync(Socket socket, CancellationToken ct)
    {
        using (socket)
        {
            socket.NoDelay = true;
            var buffer = new byte[256];
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
            idle.CancelAfter(s_idleTimeout);
            try
            {
                int n;
                while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, idle.Token).ConfigureAwait(false)) > 0)
                {
                    if (buffer[0] == PerfProtocol.ProbeByte)
                    {
                        await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, idle.Token).ConfigureAwait(false);
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }
    }
}
