using System.Diagnostics;
using System.Security.Cryptography;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Perf;

/// <summary>
/// <c>serval-perf client</c>: starts a host, routes the service to the server (a FORWARD rule, or the advisory address),
/// opens the flows, sends for the duration (or the byte count) and prints what the server received.
/// Goodput = payload bytes the server reports received × 8 / time from the flows' start to the last report.
/// </summary>
internal static class PerfClient
{
    private const int ChunkSize = 128 * 1024;
    private static readonly TimeSpan s_connectTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_drainTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_endInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan s_endTimeout = TimeSpan.FromSeconds(5);
    private static TextWriter s_error = TextWriter.Null;

    public static async Task<int> RunAsync(ClientSettings settings, TextWriter output, TextWriter error, CancellationToken ct)
    {
        s_error = error;
        var common = settings.Common;
        ServalHost host;
        try
        {
            host = await common.StartHostAsync("serval-perf-client", ct).ConfigureAwait(false);
        }
        catch (PerfException e)
        {
            await error.WriteLineAsync($"serval-perf client: {e.Message}").ConfigureAwait(false);
            return 1;
        }

        await using (host.ConfigureAwait(false))
        {
            try
            {
                if (!settings.Advisory)
                {
                    var target = ServiceTarget.Forward(settings.Peer, settings.PeerLink);
                    try
                    {
                        await host.Admin.AddRuleAsync(ServicePrefix.Exact(common.Service), target, cancellationToken: ct).ConfigureAwait(false);
                    }
                    catch (ServalException e)
                    {
                        throw new PerfException($"cannot add the FORWARD rule to {settings.Peer}: {e.Error}");
                    }
                }

                var result = settings.Datagram
                    ? await RunDatagramsAsync(settings, host, ct).ConfigureAwait(false)
                    : await RunStreamsAsync(settings, host, ct).ConfigureAwait(false);
                result.Write(output, common.Json, indented: true);
                return 0;
            }
            catch (PerfException e)
            {
                await error.WriteLineAsync($"serval-perf client: {e.Message}").ConfigureAwait(false);
                return 1;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                await error.WriteLineAsync("serval-perf client: interrupted").ConfigureAwait(false);
                return 1;
            }
        }
    }

    private static ServalConnectionOptions ConnectionOptions(ClientSettings settings, ServalHost host) => new()
    {
        Host = host,
        Service = settings.Common.Service,
        AdvisoryAddress = settings.Advisory ? settings.Peer : default,
    };

    private static async Task<T> ConnectAsync<T>(Func<CancellationToken, ValueTask<T>> connect, ClientSettings settings, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(s_connectTimeout);
        try
        {
            return await connect(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new PerfException($"no answer from {settings.Common.ServiceText} at {settings.Peer} within {s_connectTimeout.TotalSeconds:0} s (is the server running?)");
        }
        catch (ServalException e)
        {
            throw new PerfException($"cannot connect to {settings.Common.ServiceText} at {settings.Peer}: {e.Message}");
        }
    }

    private static long QuotaOf(ClientSettings settings, int flow) =>
        settings.Bytes is { } total ? (total / settings.Parallel) + (flow < total % settings.Parallel ? 1 : 0) : long.MaxValue;

    private static PerfResult Result(ClientSettings settings, string mode, double seconds, double cpu, FlowResult[] flows, ServalHost host) => new()
    {
        Role = "client",
        Mode = mode,
        Service = settings.Common.ServiceText,
        Peer = settings.Peer.ToString(),
        Seconds = seconds,
        CpuSeconds = cpu,
        Flows = flows,
        Links = host.Links,
    };

    // ------------------------------------------------------------------------------------------------------------
    // Streams

    private static async Task<PerfResult> RunStreamsAsync(ClientSettings settings, ServalHost host, CancellationToken ct)
    {
        var testId = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        var connections = new ServalConnection[settings.Parallel];
        try
        {
            for (var i = 0; i < connections.Length; i++)
            {
                connections[i] = await ConnectAsync(t => ServalConnection.ConnectAsync(ConnectionOptions(settings, host), t), settings, ct).ConfigureAwait(false);
            }

            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var started = Stopwatch.GetTimestamp();
            var deadline = settings.Bytes is null ? started + (long)(settings.Duration.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
            using var stopReporting = new CancellationTokenSource();
            var reporting = settings.Interval is { } every ? ReportIntervalsAsync(connections, every, started, stopReporting.Token) : Task.CompletedTask;
            var flows = await Task.WhenAll(connections.Select((c, i) => Task.Run(
                () => RunStreamAsync(c, new PerfProtocol.Hello(PerfProtocol.ModeStream, settings.Parallel, i, testId), QuotaOf(settings, i), started, deadline, ct),
                CancellationToken.None))).ConfigureAwait(false);
            await stopReporting.CancelAsync().ConfigureAwait(false);
            await reporting.ConfigureAwait(false);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            return Result(settings, "stream", seconds, cpu.TotalSeconds, flows, host);
        }
        finally
        {
            foreach (var c in connections)
            {
                if (c is not null)
                {
                    await c.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Prints each flow's acknowledged bytes in the interval and its sender state, like iperf's -i.</summary>
    private static async Task ReportIntervalsAsync(ServalConnection[] connections, TimeSpan every, long started, CancellationToken ct)
    {
        var acked = new long[connections.Length];
        var last = started;
        try
        {
            while (true)
            {
                await Task.Delay(every, ct).ConfigureAwait(false);
                var now = Stopwatch.GetTimestamp();
                var span = Stopwatch.GetElapsedTime(last, now).TotalSeconds;
                last = now;
                for (var i = 0; i < connections.Length; i++)
                {
                    if (await connections[i].GetFlowInfoAsync(ct).ConfigureAwait(false) is not { Stream: { } s })
                    {
                        continue;
                    }

                    var delta = s.BytesAcked - acked[i];
                    acked[i] = s.BytesAcked;
                    await s_error.WriteLineAsync(string.Create(
                        System.Globalization.CultureInfo.InvariantCulture,
                        $"[{i,3}] {Stopwatch.GetElapsedTime(started, now).TotalSeconds,6:0.00} s  {delta * 8 / span / 1e9,7:0.000} Gbit/s  cwnd {s.CongestionWindow}  in flight {s.BytesInFlight}  srtt {s.SmoothedRtt.TotalMicroseconds:0} us  rwnd {s.SendWindow}  retrans {s.Retransmissions}  rto {s.Timeouts}  tlp {s.TailLossProbes}")).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or ServalException)
        {
            // The test ended.
        }
    }

    private static async Task<FlowResult> RunStreamAsync(ServalConnection connection, PerfProtocol.Hello hello, long quota, long started, long deadline, CancellationToken ct)
    {
        var stream = connection.GetStream();
        var chunk = new byte[ChunkSize];
        RandomNumberGenerator.Fill(chunk);
        PerfProtocol.WriteHello(chunk, hello);
        try
        {
            await stream.WriteAsync(chunk.AsMemory(0, PerfProtocol.HelloLength), ct).ConfigureAwait(false);
            long sent = 0;
            while (sent < quota && Stopwatch.GetTimestamp() < deadline)
            {
                var n = (int)Math.Min(ChunkSize, quota - sent);
                await stream.WriteAsync(chunk.AsMemory(0, n), ct).ConfigureAwait(false);
                sent += n;
            }

            stream.CompleteWrites();
            using var drain = CancellationTokenSource.CreateLinkedTokenSource(ct);
            drain.CancelAfter(s_drainTimeout);
            var report = new byte[PerfProtocol.ReportLength];
            var got = 0;
            while (got < report.Length)
            {
                var n = await stream.ReadAsync(report.AsMemory(got), drain.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                got += n;
            }

            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            if (!PerfProtocol.TryReadReport(report.AsSpan(0, got), out _, out var received))
            {
                throw new PerfException($"flow {hello.FlowIndex}: the server closed without a report");
            }

            var info = await connection.GetFlowInfoAsync(ct).ConfigureAwait(false);
            return new FlowResult
            {
                Index = hello.FlowIndex,
                Bytes = received,
                Seconds = seconds,
                Retransmissions = info?.Stream?.Retransmissions ?? 0,
                SmoothedRttMicroseconds = info?.Stream?.SmoothedRtt.TotalMicroseconds ?? 0,
                CongestionWindow = info?.Stream?.CongestionWindow ?? 0,
                Timeouts = info?.Stream?.Timeouts ?? 0,
                FastRetransmits = info?.Stream?.FastRetransmits ?? 0,
                TailLossProbes = info?.Stream?.TailLossProbes ?? 0,
            };
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new PerfException($"flow {hello.FlowIndex}: no report from the server within {s_drainTimeout.TotalSeconds:0} s");
        }
        catch (Exception e) when (e is ServalException or IOException)
        {
            throw new PerfException($"flow {hello.FlowIndex}: {e.Message}");
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Datagrams

    private static async Task<PerfResult> RunDatagramsAsync(ClientSettings settings, ServalHost host, CancellationToken ct)
    {
        var testId = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        var sockets = new ServalDatagramSocket[settings.Parallel];
        try
        {
            for (var i = 0; i < sockets.Length; i++)
            {
                sockets[i] = await ConnectAsync(t => ServalDatagramSocket.ConnectAsync(ConnectionOptions(settings, host), t), settings, ct).ConfigureAwait(false);
            }

            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var started = Stopwatch.GetTimestamp();
            var deadline = settings.Bytes is null ? started + (long)(settings.Duration.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
            var flows = await Task.WhenAll(sockets.Select((s, i) => Task.Run(
                () => RunDatagramFlowAsync(s, settings, new PerfProtocol.Hello(PerfProtocol.ModeDatagram, settings.Parallel, i, testId), QuotaOf(settings, i), started, deadline, ct),
                CancellationToken.None))).ConfigureAwait(false);
            var seconds = flows.Max(f => f.Seconds);
            cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            return Result(settings, "datagram", seconds, cpu.TotalSeconds, flows, host);
        }
        finally
        {
            foreach (var s in sockets)
            {
                if (s is not null)
                {
                    await s.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    private static async Task<FlowResult> RunDatagramFlowAsync(ServalDatagramSocket socket, ClientSettings settings, PerfProtocol.Hello hello, long quota, long started, long deadline, CancellationToken ct)
    {
        var datagram = new byte[settings.DatagramSize];
        RandomNumberGenerator.Fill(datagram);
        datagram[0] = PerfProtocol.TypeData;
        long sent = 0, count = 0;
        try
        {
            while (sent < quota && Stopwatch.GetTimestamp() < deadline)
            {
                var n = (int)Math.Min(datagram.Length, Math.Max(PerfProtocol.DataHeaderLength, quota - sent));
                BitConverter.TryWriteBytes(datagram.AsSpan(1), count);
                await socket.SendAsync(datagram.AsMemory(0, n), ct).ConfigureAwait(false);
                sent += n;
                count++;
            }

            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;

            // End datagrams until the report arrives (either may be lost).
            var end = new byte[1 + PerfProtocol.HelloLength];
            end[0] = PerfProtocol.TypeEnd;
            PerfProtocol.WriteHello(end.AsSpan(1), hello);
            var reply = new byte[256];
            var until = Stopwatch.GetTimestamp() + (long)(s_endTimeout.TotalSeconds * Stopwatch.Frequency);
            while (Stopwatch.GetTimestamp() < until)
            {
                await socket.SendAsync(end, ct).ConfigureAwait(false);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                wait.CancelAfter(s_endInterval);
                try
                {
                    while (true)
                    {
                        var n = await socket.ReceiveAsync(reply, wait.Token).ConfigureAwait(false);
                        if (n > 0 && reply[0] == PerfProtocol.TypeReport && PerfProtocol.TryReadReport(reply.AsSpan(1, n - 1), out var datagrams, out var bytes))
                        {
                            return new FlowResult { Index = hello.FlowIndex, Bytes = bytes, Seconds = seconds, DatagramsSent = count, DatagramsReceived = datagrams };
                        }
                    }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    // No report yet: send the end again.
                }
            }

            throw new PerfException($"flow {hello.FlowIndex}: no report from the server within {s_endTimeout.TotalSeconds:0} s");
        }
        catch (ServalException e)
        {
            throw new PerfException($"flow {hello.FlowIndex}: {e.Message}");
        }
    }
}
