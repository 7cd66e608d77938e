using System.Diagnostics;
using Serval.Stack;

namespace Serval.Perf;

/// <summary>
/// <c>serval-perf server</c>: a host on the given links listening for stream and datagram flows to the service. Flows
/// of one test (same test id) are gathered; when all have ended the server prints the test's figures (and with
/// <c>--one-off</c> exits).
/// </summary>
internal static class PerfServer
{
    private static readonly TimeSpan s_reportTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_datagramLinger = TimeSpan.FromSeconds(2);

    public static async Task<int> RunAsync(CommonSettings settings, bool oneOff, TextWriter output, TextWriter error, CancellationToken ct)
    {
        ServalHost host;
        try
        {
            host = await settings.StartHostAsync("serval-perf-server", ct).ConfigureAwait(false);
        }
        catch (PerfException e)
        {
            await error.WriteLineAsync($"serval-perf server: {e.Message}").ConfigureAwait(false);
            return 1;
        }

        await using (host.ConfigureAwait(false))
        {
            var endPoint = new ServiceEndPoint(settings.Service);
            ServalListener streams;
            ServalListener datagrams;
            try
            {
                streams = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = endPoint }, ct).ConfigureAwait(false);
                datagrams = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = endPoint, Protocol = TransportProtocol.Datagram }, ct).ConfigureAwait(false);
            }
            catch (ServalException e)
            {
                await error.WriteLineAsync($"serval-perf server: cannot listen on {settings.ServiceText}: {e.Message}").ConfigureAwait(false);
                return 1;
            }

            var server = new Server(settings, host, output, oneOff);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var links = string.Join(", ", host.Links.Select(l => l.Name));
            await error.WriteLineAsync($"serval-perf server: listening for {settings.ServiceText} ({settings.Service}) on {links}").ConfigureAwait(false);
            await error.FlushAsync(ct).ConfigureAwait(false);
            var acceptStreams = AcceptStreamsAsync(streams, server, stop.Token);
            var acceptDatagrams = AcceptDatagramsAsync(datagrams, server, stop.Token);
            try
            {
                await server.Done.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Ctrl-C: the normal end without --one-off.
            }

            await stop.CancelAsync().ConfigureAwait(false);
            await streams.DisposeAsync().ConfigureAwait(false);
            await datagrams.DisposeAsync().ConfigureAwait(false);
            await Task.WhenAll(acceptStreams, acceptDatagrams).ConfigureAwait(false);
            await server.WaitForFlowsAsync(TimeSpan.FromSeconds(3)).ConfigureAwait(false);
            await error.WriteLineAsync($"serval-perf server: accepted {server.Accepted} stream(s); engine {PerfConnectRate.EngineCountersJson(host.Counters).ToJsonString()}").ConfigureAwait(false);
            return server.Failed ? 1 : 0;
        }
    }

    private static async Task AcceptStreamsAsync(ServalListener listener, Server server, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            ServalConnection connection;
            try
            {
                connection = await listener.AcceptConnectionAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or ServalException)
            {
                return;
            }

            server.CountAccepted();
            server.Track(Task.Run(() => server.ServeStreamAsync(connection, ct), CancellationToken.None));
        }
    }

    private static async Task AcceptDatagramsAsync(ServalListener listener, Server server, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            ServalDatagramSocket socket;
            try
            {
                socket = await listener.AcceptDatagramSocketAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or ServalException)
            {
                return;
            }

            server.Track(Task.Run(() => server.ServeDatagramsAsync(socket, ct), CancellationToken.None));
        }
    }

    private sealed class Server(CommonSettings settings, ServalHost host, TextWriter output, bool oneOff)
    {
        private readonly Dictionary<ulong, TestState> _tests = [];
        private readonly List<Task> _flows = [];
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Lock _lock = new();

        public Task Done => _done.Task;

        private long _accepted;

        public bool Failed { get; private set; }

        public long Accepted => Interlocked.Read(ref _accepted);

        public void CountAccepted() => Interlocked.Increment(ref _accepted);

        public void Track(Task flow)
        {
            lock (_lock)
            {
                _flows.RemoveAll(t => t.IsCompleted);
                _flows.Add(flow);
            }
        }

        public async Task WaitForFlowsAsync(TimeSpan timeout)
        {
            Task[] flows;
            lock (_lock)
            {
                flows = [.. _flows];
            }

            await Task.WhenAny(Task.WhenAll(flows), Task.Delay(timeout)).ConfigureAwait(false);
        }

        private TestState Begin(PerfProtocol.Hello hello, long cpuTicks)
        {
            lock (_lock)
            {
                if (!_tests.TryGetValue(hello.TestId, out var test))
                {
                    test = new TestState(hello.Mode, hello.Flows, Stopwatch.GetTimestamp(), cpuTicks);
                    _tests[hello.TestId] = test;
                }

                return test;
            }
        }

        private void Complete(ulong testId, TestState test, Completed flow)
        {
            lock (_lock)
            {
                if (test.Results.Any(r => r.Index == flow.Index))
                {
                    return;
                }

                test.Results.Add(flow);
                if (test.Results.Count < test.Flows)
                {
                    return;
                }

                _tests.Remove(testId);
                var result = new PerfResult
                {
                    Role = "server",
                    Mode = test.Mode == PerfProtocol.ModeStream ? "stream" : "datagram",
                    Service = settings.ServiceText,
                    Peer = flow.Peer,
                    Seconds = test.Mode == PerfProtocol.ModeStream ? Stopwatch.GetElapsedTime(test.Started).TotalSeconds : test.Results.Max(r => r.Result.Seconds),
                    CpuSeconds = TimeSpan.FromTicks(Process.GetCurrentProcess().TotalProcessorTime.Ticks - test.CpuTicks).TotalSeconds,
                    Flows = [.. test.Results.OrderBy(r => r.Index).Select(r => r.Result)],
                    Links = host.Links,
                };
                result.Write(output, settings.Json, indented: false);
                output.Flush();
                if (oneOff)
                {
                    _done.TrySetResult();
                }
            }
        }

        private void Fail()
        {
            lock (_lock)
            {
                if (oneOff)
                {
                    Failed = true;
                    _done.TrySetResult();
                }
            }
        }

        public async Task ServeStreamAsync(ServalConnection connection, CancellationToken ct)
        {
            await using (connection.ConfigureAwait(false))
            {
                var stream = connection.GetStream();
                var buffer = new byte[256 * 1024];
                try
                {
                    var got = 0;
                    while (got < PerfProtocol.HelloLength)
                    {
                        var n = await stream.ReadAsync(buffer.AsMemory(got, PerfProtocol.HelloLength - got), ct).ConfigureAwait(false);
                        if (n == 0)
                        {
                            return;
                        }

                        if (got == 0 && buffer[0] == PerfProtocol.ProbeByte)
                        {
                            await ServeProbeAsync(stream, buffer, n, ct).ConfigureAwait(false);
                            return;
                        }

                        got += n;
                    }

                    if (!PerfProtocol.TryReadHello(buffer, out var hello) || hello.Mode != PerfProtocol.ModeStream)
                    {
                        connection.GetStream().Abort();
                        return;
                    }

                    var test = Begin(hello, Process.GetCurrentProcess().TotalProcessorTime.Ticks);
                    var started = Stopwatch.GetTimestamp();
                    long bytes = 0;
                    int read;
                    while ((read = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                    {
                        bytes += read;
                    }

                    var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                    PerfProtocol.WriteReport(buffer, 0, bytes);
                    await stream.WriteAsync(buffer.AsMemory(0, PerfProtocol.ReportLength), ct).ConfigureAwait(false);
                    stream.CompleteWrites();
                    await stream.WritesClosed.WaitAsync(s_reportTimeout, ct).ConfigureAwait(false);
                    var info = await connection.GetFlowInfoAsync(ct).ConfigureAwait(false);
                    Complete(hello.TestId, test, new Completed(hello.FlowIndex, info?.PeerAddress.ToString() ?? "?", new FlowResult
                    {
                        Index = hello.FlowIndex,
                        Bytes = bytes,
                        Seconds = seconds,
                        Retransmissions = info?.Stream?.Retransmissions ?? 0,
                    }));
                }
                catch (Exception e) when (e is IOException or ServalException or TimeoutException or ObjectDisposedException)
                {
                    Fail();
                }
                catch (OperationCanceledException)
                {
                }
            }
        }

        /// <summary>A connect-rate probe: echoes what it sends until it closes (bounded by <see cref="s_reportTimeout"/>).</summary>
        private static async Task ServeProbeAsync(ServalStream stream, byte[] buffer, int n, CancellationToken ct)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(s_reportTimeout);
            try
            {
                do
                {
                    await stream.WriteAsync(buffer.AsMemory(0, n), timeout.Token).ConfigureAwait(false);
                }
                while ((n = await stream.ReadAsync(buffer, timeout.Token).ConfigureAwait(false)) > 0);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
            {
                // The client went away: a connect-rate test counts that on its side.
            }
        }

        public async Task ServeDatagramsAsync(ServalDatagramSocket socket, CancellationToken ct)
        {
            await using (socket.ConfigureAwait(false))
            {
                var buffer = new byte[65_536];
                var report = new byte[PerfProtocol.ReportLength + 1];
                long datagrams = 0, bytes = 0;
                long first = 0, last = 0, cpuAtFirst = 0;
                var linger = CancellationTokenSource.CreateLinkedTokenSource(ct);
                try
                {
                    while (true)
                    {
                        var n = await socket.ReceiveAsync(buffer, linger.Token).ConfigureAwait(false);
                        if (n == 0)
                        {
                            return;
                        }

                        if (buffer[0] == PerfProtocol.TypeData)
                        {
                            last = Stopwatch.GetTimestamp();
                            if (datagrams++ == 0)
                            {
                                first = last;
                                cpuAtFirst = Process.GetCurrentProcess().TotalProcessorTime.Ticks;
                            }

                            bytes += n;
                            continue;
                        }

                        if (buffer[0] != PerfProtocol.TypeEnd || !PerfProtocol.TryReadHello(buffer.AsSpan(1, n - 1), out var hello) || hello.Mode != PerfProtocol.ModeDatagram)
                        {
                            continue;
                        }

                        // The report answers every end datagram (the client repeats it until a report arrives).
                        report[0] = PerfProtocol.TypeReport;
                        PerfProtocol.WriteReport(report.AsSpan(1), datagrams, bytes);
                        await socket.SendAsync(report, ct).ConfigureAwait(false);
                        var test = Begin(hello, datagrams > 0 ? cpuAtFirst : Process.GetCurrentProcess().TotalProcessorTime.Ticks);
                        Complete(hello.TestId, test, new Completed(hello.FlowIndex, "datagram flow", new FlowResult
                        {
                            Index = hello.FlowIndex,
                            Bytes = bytes,
                            Seconds = datagrams > 1 ? Stopwatch.GetElapsedTime(first, last).TotalSeconds : 0,
                            DatagramsReceived = datagrams,
                        }));
                        linger.CancelAfter(s_datagramLinger);
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or ServalException)
                {
                }
                finally
                {
                    linger.Dispose();
                }
            }
        }
    }

    private sealed record Completed(int Index, string Peer, FlowResult Result);

    private sealed class TestState(byte mode, int flows, long started, long cpuTicks)
    {
        public byte Mode { get; } = mode;

        public int Flows { get; } = flows;

        public long Started { get; } = started;

        public long CpuTicks { get; } = cpuTicks;

        public List<Completed> Results { get; } = [];
    }
}
