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
/// <c>bench/run.sh flows</c>: the memory an idle connection costs, both ends in one process, and how fast connections
/// open. Three modes, each one process so that one's memory does not blur the other's:
/// <list type="bullet">
/// <item><c>flows serval N</c>: two hosts (<see cref="ServalHost"/>, UDP links on loopback) in this process; N
/// connections opened with at most <c>FLOWS_WINDOW</c> connects in flight and accepted as they arrive; then idle.
/// Bytes per flow = (RSS after - RSS before) / N, after a full collection.</item>
/// <item><c>flows kernel N</c>: the same with kernel TCP sockets on loopback: (slab after - slab before, from
/// /proc/slabinfo) + (RSS after - RSS before), over N.</item>
/// <item><c>flows engine N</c>: two engines in memory on one thread (no runtime, no sockets): managed bytes per flow
/// per side and CPU per connection, split into connect, the client's and the server's engine work, and accept.</item>
/// </list>
/// Each prints one line <c>flows-MODE: ...</c>; bench/run.sh combines them.
/// </summary>
internal static class FlowsBenchmark
{
    private static readonly ServiceId Service = ServiceId.FromName("bench.flows");

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 2 || !int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1)
        {
            Console.Error.WriteLine("usage: flows serval|kernel|engine N");
            return 2;
        }

        return args[0] switch
        {
            "serval" => await ServalAsync(n).ConfigureAwait(false),
            "kernel" => await KernelAsync(n).ConfigureAwait(false),
            "engine" => Engine(n),
            _ => 2,
        };
    }

    private static int Env(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;

    /// <summary>Resident set size of this process, bytes (/proc/self/status VmRSS).</summary>
    internal static long Rss()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("no VmRSS in /proc/self/status");
    }

    /// <summary>Bytes held by the kernel's slab caches: the sum of active objects x object size (/proc/slabinfo).</summary>
    internal static long Slab()
    {
        long total = 0;
        foreach (var line in File.ReadLines("/proc/slabinfo"))
        {
            if (line.StartsWith("slabinfo", StringComparison.Ordinal) || line.StartsWith('#'))
            {
                continue;
            }

            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            total += long.Parse(f[1], CultureInfo.InvariantCulture) * long.Parse(f[3], CultureInfo.InvariantCulture);
        }

        return total;
    }

    private static long Settled()
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static async Task<int> ServalAsync(int n)
    {
        var window = Env("FLOWS_WINDOW", 1024);
        var net = (byte)Random.Shared.Next(1, 250);
        var serverLink = new UdpLink(new IPAddress([127, net, 9, 1]));
        var clientLink = new UdpLink(new IPAddress([127, net, 9, 2]));
        await using var server = await ServalHost.StartAsync(new ServalHostOptions { Name = "server", Links = [serverLink], MonitorInterfaces = false }).ConfigureAwait(false);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "client", Links = [clientLink], MonitorInterfaces = false }).ConfigureAwait(false);
        await client.Admin.AddRuleAsync(ServicePrefix.Exact(Service), client.Admin.ForwardTo(serverLink.LocalAddress)).ConfigureAwait(false);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions
        {
            Host = server,
            ListenEndPoint = new ServiceEndPoint(Service),
            ListenBacklog = Math.Max(window, 512),
        }).ConfigureAwait(false);

        // Warm-up (JIT, pools): a few connections opened and closed.
        await OpenAsync(client, listener, Math.Min(n, 2000), window, new List<ServalConnection>(), new List<ServalConnection>()).ConfigureAwait(false);
        var clients = new List<ServalConnection>(n);
        var servers = new List<ServalConnection>(n);
        var heapBefore = Settled();
        var rssBefore = Rss();
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        var (opened, failed) = await OpenAsync(client, listener, n, window, clients, servers).ConfigureAwait(false);
        var seconds = sw.Elapsed.TotalSeconds;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;

        // Idle a moment (delayed ACKs, timers settle), then measure.
        await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        var heapAfter = Settled();
        var rssAfter = Rss();
        var flows = Math.Max(1, opened);
        var perFlow = (double)(rssAfter - rssBefore) / flows;
        var heapPerFlow = (double)(heapAfter - heapBefore) / flows;
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  serval: {opened} of {n} connections open ({failed} failed) in {seconds:F2} s, {cpu.TotalMilliseconds * 1000 / flows:F1} us CPU each; RSS {rssBefore >> 20} -> {rssAfter >> 20} MiB, managed heap {heapBefore >> 20} -> {heapAfter >> 20} MiB ({heapPerFlow:F0} B/flow, both ends)"));
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"flows-serval: bytes_per_flow={perFlow:F0} heap_bytes_per_flow={heapPerFlow:F0} open_per_s={opened / seconds:F0} cpu_us_per_open={cpu.TotalMilliseconds * 1000 / flows:F1} flows={opened} failed={failed}"));

        var close = Stopwatch.StartNew();
        foreach (var c in clients)
        {
            await c.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var s in servers)
        {
            await s.DisposeAsync().ConfigureAwait(false);
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  serval: closed in {close.Elapsed.TotalSeconds:F1} s"));
        return 0;
    }

    /// <summary>
    /// Opens <paramref name="n"/> connections with at most <paramref name="window"/> not yet accepted (a slot frees when
    /// the server accepts, so the accept queue never overflows), accepting with 64 accepts outstanding at once (the
    /// listener completes as many as are ready on each pass of the engine thread).
    /// </summary>
    private static async Task<(int Opened, int Failed)> OpenAsync(ServalHost client, ServalListener listener, int n, int window, List<ServalConnection> clients, List<ServalConnection> servers)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(Math.Max(120, n / 200)));
        var accepted = 0;
        var failed = 0;
        var inFlight = new SemaphoreSlim(window);
        var gate = new Lock();
        var acceptors = Enumerable.Range(0, 64).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref accepted) <= n)
            {
                var s = await listener.AcceptConnectionAsync(deadline.Token).ConfigureAwait(false);
                lock (gate)
                {
                    servers.Add(s);
                }

                inFlight.Release();
            }
        })).ToList();
        var tasks = new List<Task>(n);
        for (var i = 0; i < n; i++)
        {
            await inFlight.WaitAsync(deadline.Token).ConfigureAwait(false);
            tasks.Add(ConnectOneAsync());
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
        try
        {
            await Task.WhenAll(acceptors).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"  serval: {servers.Count} of {n} accepted before the deadline");
        }

        return (Math.Min(clients.Count, servers.Count), failed);

        async Task ConnectOneAsync()
        {
            try
            {
                var c = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Service }, deadline.Token).ConfigureAwait(false);
                lock (gate)
                {
                    clients.Add(c);
                }
            }
            catch (Exception e) when (e is ServalException or OperationCanceledException)
            {
                Interlocked.Increment(ref failed);
                inFlight.Release();
                if (failed <= 3)
                {
                    Console.Error.WriteLine("  serval: connect failed: " + e.Message);
                }
            }
        }
    }

    private static async Task<int> KernelAsync(int n)
    {
        var window = Env("FLOWS_WINDOW", 1024);
        var ports = Math.Max(1, (n + 19_999) / 20_000);
        var listeners = new List<Socket>();
        for (var p = 0; p < ports; p++)
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            l.Listen(4096);
            listeners.Add(l);
        }

        var clients = new List<Socket>(n);
        var servers = new List<Socket>(n);
        await KernelOpenAsync(listeners, Math.Min(n, 2000), window, new List<Socket>(), new List<Socket>(), dispose: true).ConfigureAwait(false);
        Settled();
        var slabBefore = Slab();
        var rssBefore = Rss();
        var sw = Stopwatch.StartNew();
        await KernelOpenAsync(listeners, n, window, clients, servers, dispose: false).ConfigureAwait(false);
        var seconds = sw.Elapsed.TotalSeconds;
        await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        Settled();
        var slabAfter = Slab();
        var rssAfter = Rss();
        var slabPerFlow = (double)(slabAfter - slabBefore) / n;
        var rssPerFlow = (double)(rssAfter - rssBefore) / n;
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  kernel: {n} TCP connections on loopback in {seconds:F2} s; slab {slabBefore >> 20} -> {slabAfter >> 20} MiB ({slabPerFlow:F0} B/flow), RSS {rssBefore >> 20} -> {rssAfter >> 20} MiB ({rssPerFlow:F0} B/flow)"));
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"flows-kernel: bytes_per_flow={slabPerFlow + rssPerFlow:F0} slab_bytes_per_flow={slabPerFlow:F0} rss_bytes_per_flow={rssPerFlow:F0} open_per_s={n / seconds:F0} flows={n}"));
        foreach (var s in clients.Concat(servers).Concat(listeners))
        {
            s.Dispose();
        }

        return 0;
    }

    private static async Task KernelOpenAsync(List<Socket> listeners, int n, int window, List<Socket> clients, List<Socket> servers, bool dispose)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(Math.Max(120, n / 500)));
        var acceptTasks = listeners.Select((l, i) =>
        {
            var count = n / listeners.Count + (i < n % listeners.Count ? 1 : 0);
            return Task.Run(async () =>
            {
                var mine = new List<Socket>(count);
                for (var k = 0; k < count; k++)
                {
                    mine.Add(await l.AcceptAsync(deadline.Token).ConfigureAwait(false));
                }

                return mine;
            });
        }).ToList();
        var inFlight = new SemaphoreSlim(window);
        var tasks = new Task<Socket>[n];
        for (var i = 0; i < n; i++)
        {
            await inFlight.WaitAsync(deadline.Token).ConfigureAwait(false);
            var target = (IPEndPoint)listeners[i % listeners.Count].LocalEndPoint!;
            tasks[i] = ConnectOneAsync(target);
        }

        clients.AddRange(await Task.WhenAll(tasks).ConfigureAwait(false));
        foreach (var t in acceptTasks)
        {
            servers.AddRange(await t.ConfigureAwait(false));
        }

        if (dispose)
        {
            foreach (var s in clients.Concat(servers))
            {
                s.Dispose();
            }
        }

        async Task<Socket> ConnectOneAsync(IPEndPoint target)
        {
            try
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await s.ConnectAsync(target, deadline.Token).ConfigureAwait(false);
                return s;
            }
            finally
            {
                inFlight.Release();
            }
        }
    }

    /// <summary>Two engines in memory: per-side managed bytes per idle flow and the CPU a connection costs, by part.</summary>
    private static int Engine(int n)
    {
        EngineOpen(new MemNet(EngineOptions.Default, 3), Math.Min(n, 2000), out _);
        var net = new MemNet(EngineOptions.Default, 5);
        var before = Settled();
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        if (!EngineOpen(net, n, out var parts))
        {
            Console.Error.WriteLine("flows engine: connections did not come up");
            return 1;
        }

        var seconds = sw.Elapsed.TotalSeconds;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
        var after = Settled();
        var perSide = (double)(after - before) / n / 2;
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  engine: {n} flows in {seconds:F2} s, {cpu.TotalMilliseconds * 1000 / n:F2} us CPU each: connect {parts[0] * 1e6 / n:F2}, client engine {parts[1] * 1e6 / n:F2}, server engine {parts[2] * 1e6 / n:F2}, accept {parts[3] * 1e6 / n:F2} us; heap {before >> 10} -> {after >> 10} KiB; flows A {net.A.FlowCount} B {net.B.FlowCount}"));
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"flows-engine: heap_bytes_per_flow_per_side={perSide:F0} open_per_s={n / seconds:F0} cpu_us_per_open={cpu.TotalMilliseconds * 1000 / n:F2} connect_us={parts[0] * 1e6 / n:F2} client_engine_us={parts[1] * 1e6 / n:F2} server_engine_us={parts[2] * 1e6 / n:F2} accept_us={parts[3] * 1e6 / n:F2}"));
        GC.KeepAlive(net);
        return 0;
    }

    private static bool EngineOpen(MemNet net, int n, out double[] parts)
    {
        const int Batch = 1000;
        parts = new double[4];
        var done = 0;
        var pending = new List<SocketHandle>(Batch);
        while (done < n)
        {
            var count = Math.Min(Batch, n - done);
            pending.Clear();
            var t = Stopwatch.GetTimestamp();
            for (var i = 0; i < count; i++)
            {
                net.A.Connect(MemNet.Service, TransportProtocol.Stream, net.Now, out var c);
                pending.Add(c);
            }

            parts[0] += Stopwatch.GetElapsedTime(t).TotalSeconds;
            var accepted = 0;
            for (var step = 0; step < 100 && accepted < count; step++)
            {
                net.Step(TimeSpan.FromMilliseconds(1), parts);
                t = Stopwatch.GetTimestamp();
                while (net.B.Accept(net.Listener, out var s) == ServalError.None && !s.IsNone)
                {
                    accepted++;
                }

                parts[3] += Stopwatch.GetElapsedTime(t).TotalSeconds;
            }

            if (accepted < count || pending.Any(c => net.A.GetState(c) != SalState.Connected))
            {
                Console.Error.WriteLine($"  engine: batch at {done}: {accepted} of {count} accepted");
                return false;
            }

            done += count;
        }

        // Let delayed ACKs and handshake timers run out so that the flows are idle.
        for (var i = 0; i < 5; i++)
        {
            net.Step(TimeSpan.FromMilliseconds(200), parts);
        }

        return true;
    }
}
