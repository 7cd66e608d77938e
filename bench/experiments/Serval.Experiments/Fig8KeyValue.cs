using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Serval.Links;
using Serval.Netns;
using Serval.Wire;

namespace Serval.Experiments;

/// <summary>
/// Figure 8 (docs/evaluation.md): a partitioned key-value store over Serval datagrams. Four store servers (our own
/// memcached-protocol store, one process each) bind the store's common prefix (/16), which registers it with one servald
/// service router; a controller here watches the router's registrations and assigns the 16 partitions (the 4 bits after
/// the prefix) to the registered servers with one FORWARD rule per partition (/20) in the router, moving partitions when
/// a server leaves or joins. A client sends memcached text-protocol SETs of 1 KiB with random keys, each to the
/// serviceID prefix + hash(key), at a fixed rate, acknowledged by the server (STORED) and retried on a timeout.
/// Timeline (× scale): server 4 leaves at 10 s, server 3 at 20 s, server 4 returns at 30 s, server 3 at 40 s; end 50 s.
/// </summary>
internal sealed class Fig8KeyValue : Experiment
{
    private const int PrefixBits = 16;
    private const int PartitionBits = 4;
    private const int Servers = 4;
    private const int ValueBytes = 1024;

    public override string Name => "fig8";

    public override IReadOnlyDictionary<string, Func<string[], Task<int>>> Roles { get; } =
        new Dictionary<string, Func<string[], Task<int>>> { ["fig8-server"] = ServerAsync };

    /// <summary>The store's common prefix: the first 16 bits of SHA-256("fig8.kv").</summary>
    internal static ServicePrefix StorePrefix { get; } = new(ServiceId.FromName("fig8.kv").Truncate(PrefixBits), PrefixBits);

    /// <summary>Partition <paramref name="p"/>'s prefix: the store prefix followed by the 4 bits of p.</summary>
    internal static ServicePrefix PartitionPrefix(int p)
    {
        var id = StorePrefix.Id;
        for (var b = 0; b < PartitionBits; b++)
        {
            id = id.WithBit(PrefixBits + b, ((p >> (PartitionBits - 1 - b)) & 1) != 0);
        }

        return new ServicePrefix(id, PrefixBits + PartitionBits);
    }

    /// <summary>A key's serviceID: the store prefix followed by the key's hash.</summary>
    internal static ServiceId KeyService(string key) => StorePrefix.Apply(ServiceId.FromName(key));

    public override async Task<int> RunAsync(ExperimentOptions options)
    {
        if (NetNamespace.UnsupportedReason is { } reason)
        {
            Console.Error.WriteLine($"fig8: cannot run: {reason}");
            return 2;
        }

        var rate = options.GetDouble("rate", 300);
        var timeout = TimeSpan.FromMilliseconds(options.GetDouble("timeout-ms", 100));
        var attempts = (int)options.GetDouble("attempts", 6);
        var step = TimeSpan.FromSeconds(10 * options.TimeScale);
        var duration = step * 5;
        var bin = TimeSpan.FromSeconds(Math.Clamp(options.TimeScale * 0.5, 0.1, 0.5));
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"fig8: SETs of {ValueBytes} B at {rate}/s, retry timeout from the measured round trip (at least {timeout.TotalMilliseconds} ms, doubled per attempt), {attempts} attempts; {Servers} servers, 16 partitions of prefix {StorePrefix}; events every {step.TotalSeconds:F1} s"));

        using var deadline = new CancellationTokenSource(duration + TimeSpan.FromSeconds(240));
        var ct = deadline.Token;
        var servald = ExperimentPaths.Servald(options);

        // One bridge: host 0 the service router, host 1 the client, hosts 2-5 the servers.
        await using var lan = BridgeLan.Create("f8", 72, 2 + Servers);
        var routerAddress = lan.Address(0);
        var routerLink = LinkAddress.FromIPAddress(routerAddress, NetnsServald.UdpPort);
        var router = await NetnsServald.StartAsync(lan.Hosts[0], servald, "fig8-router", [routerAddress.ToString()], ["--Serval:Mode=ServiceRouter"], ct);
        var servers = new ChildProcess[Servers];
        var serverAddress = Enumerable.Range(0, Servers).Select(i => lan.Address(2 + i).ToString()).ToArray();
        var reports = Enumerable.Range(0, Servers).Select(_ => new ConcurrentQueue<(long Timestamp, long Count)>()).ToArray();
        try
        {
            for (var i = 0; i < Servers; i++)
            {
                var index = i;
                servers[i] = ChildProcess.StartRole(lan.Hosts[2 + i], $"server {i + 1}", "fig8-server", [
                    "--name", $"server {i + 1}", "--serval", serverAddress[i], "--router", routerAddress.ToString(), "--prefix", StorePrefix.ToString()]);
                servers[i].OnLine = line => ParseReport(line, reports[index]);
            }

            foreach (var s in servers)
            {
                await s.WaitForLineAsync("waiting", TimeSpan.FromSeconds(90), ct);
                s.Send("bind");
            }

            foreach (var s in servers)
            {
                await s.WaitForLineAsync("bound", TimeSpan.FromSeconds(30), ct);
            }

            var controller = new PartitionController(router, serverAddress);
            await controller.WaitForServersAsync(Servers, TimeSpan.FromSeconds(30), ct);

            await using var client = lan.Hosts[1].Invoke(() => ServalHost.StartAsync(new ServalHostOptions
            {
                Name = "fig8 client",
                Links = [new UdpLink(lan.Address(1))],
                RegisterWithRouter = routerLink,
            }).AsTask().GetAwaiter().GetResult());
            await using var socket = await ServalDatagramSocket.BindAsync(client, ServicePrefix.Exact(ServiceId.FromName("fig8.client")), ct);
            var load = new KeyValueLoad(socket, rate, timeout, attempts);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var receiver = load.ReceiveAsync(stop.Token);

            // The store works end to end (the client's registration reached the router, replies come back) before the timeline.
            await load.CheckSetGetAsync(TimeSpan.FromSeconds(30), ct);

            // Warm-up (not recorded): the offered load for a few seconds, so the timeline does not measure JIT compilation.
            var warmUp = TimeSpan.FromSeconds(Math.Max(1, 5 * options.TimeScale));
            using (var warm = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                var warmRetrier = load.RetryAsync(warm.Token);
                await load.SendAsync(Stopwatch.StartNew(), warmUp, ct);
                var warmClock = Stopwatch.StartNew();
                while (load.Pending > 0 && warmClock.Elapsed < TimeSpan.FromSeconds(20))
                {
                    await Task.Delay(20, ct);
                }

                await warm.CancelAsync();
                await warmRetrier;
                Console.Error.WriteLine($"fig8: warm-up: {load.FirstSends} requests in {warmUp.TotalSeconds:F1} s, {load.Acknowledged} acknowledged, {load.Retries} retries (not counted)");
                load.Reset();
            }

            var figure = new Figure("fig8", "Partitioned key-value store: requests per server as servers leave and return", "time (s)", "requests/s (1 KiB SETs)");
            var t0 = Stopwatch.GetTimestamp();
            var clock = Stopwatch.StartNew();
            using var controlStop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var control = controller.RunAsync(clock, controlStop.Token);
            var sender = load.SendAsync(clock, duration, stop.Token);
            var retrier = load.RetryAsync(stop.Token);
            var sampler = load.SampleAsync(clock, bin, duration, stop.Token);

            (int Server, string Command, string Label)[] events =
            [
                (3, "unbind", "server 4 leaves"), (2, "unbind", "server 3 leaves"), (3, "bind", "server 4 returns"), (2, "bind", "server 3 returns"),
            ];
            for (var e = 0; e < events.Length; e++)
            {
                await Fig7WebService.DelayUntilAsync(clock, step * (e + 1), ct);
                servers[events[e].Server].Send(events[e].Command);
                figure.Mark(step.TotalSeconds * (e + 1), events[e].Label);
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig8: t={clock.Elapsed.TotalSeconds:F2} s: {events[e].Label}"));
            }

            var acked = await sampler;
            await sender;

            // Let the last requests be answered or given up, then stop.
            var drainClock = Stopwatch.StartNew();
            while (load.Pending > 0 && drainClock.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(20, ct);
            }

            await stop.CancelAsync();
            await controlStop.CancelAsync();
            await Task.WhenAll(receiver, retrier, control).WaitAsync(TimeSpan.FromSeconds(10), ct);
            var routerStats = await router.RequestAsync(new JsonObject { ["op"] = "stats" }, ct);
            Console.Error.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"fig8: sent {load.Sent} requests ({load.Retries} retries), acknowledged {load.Acknowledged}, lost {load.Lost + load.Pending}, duplicate acks {load.DuplicateAcks}; round trip at the first attempt p50 {load.RoundTrip.P50:F1} ms, p99 {load.RoundTrip.P99:F1} ms, retry timeout at the end {load.RetryTimeout.TotalMilliseconds:F0} ms; partition moves {controller.Moves}; router forwarded {routerStats["engine"]?["forwarded"]}"));
            foreach (var line in controller.Log)
            {
                Console.Error.WriteLine("  " + line);
            }

            // Per-server request rates from the servers' own counts (timestamps on the shared monotonic clock).
            var bins = (int)Math.Round(duration / bin);
            var perServer = new double[Servers][];
            for (var s = 0; s < Servers; s++)
            {
                var points = reports[s].ToArray();
                perServer[s] = new double[bins];
                for (var k = 0; k < bins; k++)
                {
                    var from = t0 + (long)(bin.TotalSeconds * k * Stopwatch.Frequency);
                    var to = t0 + (long)(bin.TotalSeconds * (k + 1) * Stopwatch.Frequency);
                    perServer[s][k] = (CountAt(points, to) - CountAt(points, from)) / bin.TotalSeconds;
                    figure.Add($"server {s + 1}", bin.TotalSeconds * (k + 1), perServer[s][k]);
                }
            }

            foreach (var (time, count) in acked)
            {
                figure.Add("total acknowledged (client)", time, count / bin.TotalSeconds);
            }

            // Imbalance: in the second half of each period between events, the busiest server's rate over the mean of the
            // servers that hold partitions then.
            int[][] active = [[0, 1, 2, 3], [0, 1, 2], [0, 1], [0, 1, 3], [0, 1, 2, 3]];
            var maxImbalance = 0.0;
            for (var p = 0; p < active.Length; p++)
            {
                var from = (int)Math.Round((step * (p + 0.5)) / bin);
                var to = (int)Math.Round((step * (p + 1)) / bin);
                var rates = active[p].Select(s => perServer[s][from..to].Average()).ToArray();
                var mean = rates.Average();
                if (mean > 0)
                {
                    maxImbalance = Math.Max(maxImbalance, rates.Max() / mean);
                }

                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig8: period {p + 1}: {string.Join(", ", active[p].Zip(rates, (s, r) => $"server {s + 1} {r:F0}/s"))}"));
            }

            var written = figure.Save(options.OutputDirectory);
            Console.Error.WriteLine($"fig8: wrote {written.Csv} and {written.Png}");
            var seconds = duration.TotalSeconds;
            var offered = load.FirstSends / seconds;
            var served = load.Acknowledged / seconds;
            var lost = load.Lost + load.Pending;
            var valid = controller.Moves >= 16 && lost <= 0.01 * load.FirstSends && served >= 0.9 * offered && controller.Errors == 0;
            if (!valid)
            {
                Console.Error.WriteLine($"fig8: INVALID: expected >= 16 partition moves (got {controller.Moves}), <= 1% lost (got {lost} of {load.FirstSends}), served >= 90% of offered, no rule errors (got {controller.Errors})");
            }

            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"fig8: offered_rps={offered:F0} served_rps={served:F0} lost={lost} partition_moves={controller.Moves} max_imbalance={maxImbalance:F2}"));
            return valid ? 0 : 1;
        }
        finally
        {
            foreach (var s in servers)
            {
                s?.Kill();
            }

            await router.KillAsync();
            router.DeleteSocket();
        }
    }

    private static void ParseReport(string line, ConcurrentQueue<(long, long)> into)
    {
        // "report <count> <stopwatch timestamp>"
        var parts = line.Split(' ');
        if (parts.Length == 3 && parts[0] == "report"
            && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var count)
            && long.TryParse(parts[2], CultureInfo.InvariantCulture, out var ts))
        {
            into.Enqueue((ts, count));
        }
    }

    /// <summary>The cumulative count at <paramref name="timestamp"/>, interpolated between reports.</summary>
    private static double CountAt((long Timestamp, long Count)[] points, long timestamp)
    {
        if (points.Length == 0 || timestamp <= points[0].Timestamp)
        {
            return points.Length == 0 ? 0 : points[0].Count;
        }

        for (var i = 1; i < points.Length; i++)
        {
            if (points[i].Timestamp >= timestamp)
            {
                var (t1, c1) = points[i - 1];
                var (t2, c2) = points[i];
                return c1 + ((double)(c2 - c1) * (timestamp - t1) / Math.Max(1, t2 - t1));
            }
        }

        return points[^1].Count;
    }

    /// <summary>
    /// <c>fig8-server --name N --serval ADDR --router ADDR --prefix P</c>: a memcached-protocol store (text protocol in the
    /// memcached UDP frame) on a Serval datagram socket bound on the store's prefix. Commands on standard input:
    /// <c>bind</c> (bind the prefix: registers with the router), <c>unbind</c> (close the socket: unregisters; the store
    /// is emptied, as a server leaving the cluster), <c>stop</c>. Every 50 ms it writes <c>report COUNT TIMESTAMP</c>
    /// (requests handled so far, Stopwatch timestamp).
    /// </summary>
    private static async Task<int> ServerAsync(string[] args)
    {
        var a = ExperimentPaths.ParseArgs(args);
        var prefix = ServicePrefix.Parse(a["prefix"]);
        await using var host = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = a["name"],
            Links = [new UdpLink(IPAddress.Parse(a["serval"]))],
            RegisterWithRouter = LinkAddress.FromIPAddress(IPAddress.Parse(a["router"]), NetnsServald.UdpPort),
        });
        var store = new MemcachedStore();
        long handled = 0;
        using var end = new CancellationTokenSource();
        var reporter = Task.Run(async () =>
        {
            while (!end.IsCancellationRequested)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"report {Interlocked.Read(ref handled)} {Stopwatch.GetTimestamp()}"));
                try
                {
                    await Task.Delay(50, end.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });

        Console.WriteLine("waiting");
        ServalDatagramSocket? socket = null;
        Task? serving = null;
        while (true)
        {
            var command = await ExperimentPaths.WaitForCommandAsync("bind", "unbind", "stop");
            if (command == "bind" && socket is null)
            {
                socket = await ServalDatagramSocket.BindAsync(host, prefix);
                var bound = socket;
                serving = Task.Run(() => ServeAsync(bound, store, () => Interlocked.Increment(ref handled)));
                Console.WriteLine("bound");
            }
            else if (command is "unbind" or "stop" && socket is not null)
            {
                await socket.DisposeAsync();
                await serving!;
                socket = null;
                store.Clear();
                Console.WriteLine("unbound");
            }

            if (command == "stop")
            {
                break;
            }
        }

        await end.CancelAsync();
        await reporter;
        return 0;
    }

    private static async Task ServeAsync(ServalDatagramSocket socket, MemcachedStore store, Action handled)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            ServalReceiveResult r;
            try
            {
                r = await socket.ReceiveFromAsync(buffer);
            }
            catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException or ServalException)
            {
                return;
            }

            var reply = store.Handle(buffer.AsSpan(0, r.ReceivedBytes));
            if (reply is null)
            {
                continue;
            }

            handled();
            try
            {
                await socket.SendToAsync(r.Source, reply);
            }
            catch (Exception e) when (e is ObjectDisposedException or ServalException)
            {
                // Unbound meanwhile, or no route back yet: the client retries.
            }
        }
    }
}

/// <summary>
/// A memcached store speaking the text protocol inside the memcached UDP frame (8 bytes: request ID, sequence number,
/// datagram count, reserved; one datagram per request and reply): <c>set KEY FLAGS EXPTIME BYTES</c> + data → STORED;
/// <c>get KEY…</c> → VALUE … END; anything else → ERROR.
/// </summary>
internal sealed class MemcachedStore
{
    private readonly ConcurrentDictionary<string, (uint Flags, byte[] Data)> _items = new(StringComparer.Ordinal);

    public int Count => _items.Count;

    public void Clear() => _items.Clear();

    /// <summary>The reply datagram to one request datagram, or null when it is not a request at all.</summary>
    public byte[]? Handle(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length < 8 + 4)
        {
            return null;
        }

        var header = datagram[..8];
        var body = datagram[8..];
        var lineEnd = body.IndexOf("\r\n"u8);
        if (lineEnd < 0)
        {
            return Reply(header, "ERROR\r\n"u8);
        }

        var words = Encoding.ASCII.GetString(body[..lineEnd]).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length >= 5 && words[0] == "set"
            && uint.TryParse(words[2], CultureInfo.InvariantCulture, out var flags)
            && int.TryParse(words[4], CultureInfo.InvariantCulture, out var length)
            && length >= 0 && body.Length >= lineEnd + 2 + length + 2)
        {
            _items[words[1]] = (flags, body.Slice(lineEnd + 2, length).ToArray());
            return words.Length > 5 && words[5] == "noreply" ? null : Reply(header, "STORED\r\n"u8);
        }

        if (words.Length >= 2 && words[0] == "get")
        {
            var text = new MemoryStream();
            foreach (var key in words.Skip(1))
            {
                if (_items.TryGetValue(key, out var item))
                {
                    text.Write(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"VALUE {key} {item.Flags} {item.Data.Length}\r\n")));
                    text.Write(item.Data);
                    text.Write("\r\n"u8);
                }
            }

            text.Write("END\r\n"u8);
            return Reply(header, text.ToArray());
        }

        return Reply(header, "ERROR\r\n"u8);
    }

    /// <summary>A request datagram: frame header for <paramref name="requestId"/> and the text command.</summary>
    public static byte[] Frame(ushort requestId, ReadOnlySpan<byte> command)
    {
        var datagram = new byte[8 + command.Length];
        datagram[0] = (byte)(requestId >> 8);
        datagram[1] = (byte)requestId;
        datagram[5] = 1; // one datagram in this message
        command.CopyTo(datagram.AsSpan(8));
        return datagram;
    }

    private static byte[] Reply(ReadOnlySpan<byte> header, ReadOnlySpan<byte> text)
    {
        var reply = new byte[8 + text.Length];
        header[..2].CopyTo(reply); // the request ID, echoed
        reply[5] = 1;
        text.CopyTo(reply.AsSpan(8));
        return reply;
    }
}

/// <summary>
/// The store's controller: watches the router's registrations of the store prefix and keeps the 16 partitions spread
/// over the registered servers (orphans to the least loaded; then moves from the most to the least loaded until they
/// differ by at most one), one FORWARD rule per partition in the router.
/// </summary>
internal sealed class PartitionController(NetnsServald router, string[] serverAddresses)
{
    private readonly string?[] _owner = new string?[1 << 4];
    private readonly List<string> _log = [];

    public int Moves { get; private set; }

    public int Errors { get; private set; }

    public IReadOnlyList<string> Log => _log;

    /// <summary>Waits until <paramref name="count"/> servers are registered, then assigns every partition.</summary>
    public async Task WaitForServersAsync(int count, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var registered = await RegisteredAsync(ct);
            if (registered.Count >= count)
            {
                await RebalanceAsync(registered, null, ct);
                Moves = 0; // the initial assignment is not a move
                return;
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"the router holds {registered.Count} of {count} registrations of {Fig8KeyValue.StorePrefix}");
            }

            await Task.Delay(50, ct);
        }
    }

    /// <summary>Polls the registrations every 20 ms and rebalances on every change.</summary>
    public async Task RunAsync(Stopwatch clock, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var registered = await RegisteredAsync(ct);
                var assigned = _owner.OfType<string>().ToHashSet(StringComparer.Ordinal);
                if (!registered.SetEquals(assigned))
                {
                    await RebalanceAsync(registered, clock, ct);
                }

                await Task.Delay(20, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task<HashSet<string>> RegisteredAsync(CancellationToken ct)
    {
        var answer = await router.RequestAsync(new JsonObject { ["op"] = "router.registrations" }, ct);
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in answer["registrations"]?.AsArray() ?? [])
        {
            if (r?["state"]?.GetValue<string>() == "active"
                && ServicePrefix.TryParse(r["prefix"]?.GetValue<string>(), null, out var prefix) && prefix == Fig8KeyValue.StorePrefix
                && r["host"]?.GetValue<string>() is { } host)
            {
                var address = host.Split(':')[0];
                if (serverAddresses.Contains(address))
                {
                    result.Add(address);
                }
            }
        }

        return result;
    }

    private async Task RebalanceAsync(HashSet<string> registered, Stopwatch? clock, CancellationToken ct)
    {
        var target = (string?[])_owner.Clone();
        if (registered.Count == 0)
        {
            return;
        }

        int Load(string s) => target.Count(o => o == s);
        string Least() => registered.OrderBy(Load).ThenBy(s => Array.IndexOf(serverAddresses, s)).First();
        for (var p = 0; p < target.Length; p++)
        {
            if (target[p] is null || !registered.Contains(target[p]!))
            {
                target[p] = Least();
            }
        }

        while (true)
        {
            var most = registered.OrderByDescending(Load).ThenBy(s => Array.IndexOf(serverAddresses, s)).First();
            var least = Least();
            if (Load(most) - Load(least) <= 1)
            {
                break;
            }

            target[Array.LastIndexOf(target, most)] = least;
        }

        var moved = 0;
        for (var p = 0; p < target.Length; p++)
        {
            if (target[p] == _owner[p])
            {
                continue;
            }

            var prefix = Fig8KeyValue.PartitionPrefix(p).ToString();
            if (_owner[p] is { } old)
            {
                // Between the removal and the new rule the store prefix's registrations (/16) catch the partition.
                await RuleAsync("rules.del", prefix, old, ct);
            }

            await RuleAsync("rules.add", prefix, target[p]!, ct);
            _owner[p] = target[p];
            moved++;
        }

        Moves += moved;
        var counts = string.Join(" ", serverAddresses.Select((s, i) => $"s{i + 1}={_owner.Count(o => o == s)}"));
        _log.Add(string.Create(CultureInfo.InvariantCulture, $"t={clock?.Elapsed.TotalSeconds ?? 0:F2} s: {registered.Count} servers registered, {moved} partitions moved: {counts}"));
    }

    private async Task RuleAsync(string op, string prefix, string target, CancellationToken ct)
    {
        var answer = await router.RequestAsync(new JsonObject { ["op"] = op, ["prefix"] = prefix, ["target"] = target }, ct);
        if (answer["ok"]?.GetValue<bool>() != true)
        {
            Errors++;
            Console.Error.WriteLine($"fig8: {op} {prefix} -> {target}: {answer.ToJsonString()}");
        }
    }
}

/// <summary>The client's load: paced SETs with random keys, acknowledgement and retry, counts per bin.</summary>
internal sealed class KeyValueLoad(ServalDatagramSocket socket, double rate, TimeSpan timeout, int attempts)
{
    private readonly ConcurrentDictionary<ushort, Request> _pending = new();
    private readonly Random _random = new(8);
    private int _nextId;
    private long _acknowledged;
    private long _sent;
    private long _firstSends;
    private long _retries;
    private long _lost;
    private long _duplicates;
    private readonly ConcurrentBag<double> _rtts = [];
    private readonly Lock _rttGate = new();
    private double _srtt;
    private double _rttvar;
    private TaskCompletionSource<byte[]>? _check;

    /// <summary>Round-trip times (ms) of requests answered at the first attempt: p50 and p99.</summary>
    public (double P50, double P99) RoundTrip
    {
        get
        {
            var sorted = _rtts.Order().ToArray();
            return sorted.Length == 0 ? (double.NaN, double.NaN) : (sorted[sorted.Length / 2], sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * 0.99))]);
        }
    }

    public long Acknowledged => Interlocked.Read(ref _acknowledged);

    public long Sent => Interlocked.Read(ref _sent);

    public long FirstSends => Interlocked.Read(ref _firstSends);

    public long Retries => Interlocked.Read(ref _retries);

    public long Lost => Interlocked.Read(ref _lost);

    public long DuplicateAcks => Interlocked.Read(ref _duplicates);

    public int Pending => _pending.Count;

    /// <summary>Clears the counts (after the warm-up, with nothing pending); the round-trip estimate stays.</summary>
    public void Reset()
    {
        _pending.Clear();
        _rtts.Clear();
        Interlocked.Exchange(ref _acknowledged, 0);
        Interlocked.Exchange(ref _sent, 0);
        Interlocked.Exchange(ref _firstSends, 0);
        Interlocked.Exchange(ref _retries, 0);
        Interlocked.Exchange(ref _lost, 0);
        Interlocked.Exchange(ref _duplicates, 0);
    }

    /// <summary>The retry timeout of a first attempt now.</summary>
    public TimeSpan RetryTimeout
    {
        get
        {
            lock (_rttGate)
            {
                var ms = _srtt == 0 ? timeout.TotalMilliseconds : _srtt + (4 * _rttvar);
                return TimeSpan.FromMilliseconds(Math.Clamp(ms, timeout.TotalMilliseconds, 2000));
            }
        }
    }

    /// <summary>One SET then a GET of the same key must return the value (retried until <paramref name="timeout"/>).</summary>
    public async Task CheckSetGetAsync(TimeSpan within, CancellationToken ct)
    {
        var key = "fig8-check";
        var value = Encoding.ASCII.GetBytes(new string('v', 100));
        var clock = Stopwatch.StartNew();
        string last = "no answer";
        while (clock.Elapsed < within)
        {
            var set = await AskAsync(key, SetCommand(key, value), ct);
            var get = set is null ? null : await AskAsync(key, Encoding.ASCII.GetBytes($"get {key}\r\n"), ct);
            if (get is not null && Encoding.ASCII.GetString(get, 8, get.Length - 8) == $"VALUE {key} 0 100\r\n{Encoding.ASCII.GetString(value)}\r\nEND\r\n")
            {
                return;
            }

            last = get is null ? (set is null ? "no answer to the SET" : "no answer to the GET") : Encoding.ASCII.GetString(get, 8, get.Length - 8);
            await Task.Delay(100, ct);
        }

        throw new TimeoutException($"the store did not answer a SET and GET in {within.TotalSeconds:F0} s (last: {last})");
    }

    private async Task<byte[]?> AskAsync(string key, byte[] command, CancellationToken ct)
    {
        _check = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        await socket.SendToAsync(Fig8KeyValue.KeyService(key), MemcachedStore.Frame(0, command), ct);
        try
        {
            return await _check.Task.WaitAsync(TimeSpan.FromMilliseconds(500), ct);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Sends new SETs at the offered rate until <paramref name="duration"/>.</summary>
    public async Task SendAsync(Stopwatch clock, TimeSpan duration, CancellationToken ct)
    {
        var value = new byte[1024];
        try
        {
            while (clock.Elapsed < duration)
            {
                // The requests due by now go out together (each send is a call to the host's engine thread).
                var due = (long)(Math.Min(clock.Elapsed.TotalSeconds, duration.TotalSeconds) * rate);
                var batch = new List<Task>();
                while (FirstSends < due)
                {
                    var key = Convert.ToHexStringLower(RandomKey());
                    _random.NextBytes(value);
                    var id = NextId();
                    var request = new Request(Fig8KeyValue.KeyService(key), MemcachedStore.Frame(id, SetCommand(key, value)));
                    _pending[id] = request;
                    Interlocked.Increment(ref _firstSends);
                    batch.Add(SendAsync(request, ct));
                }

                await Task.WhenAll(batch);

                await Task.Delay(1, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Every 5 ms: a request unanswered for its retry timeout is sent again, or given up after the last attempt. The
    /// timeout is TCP's (smoothed round trip + 4 × its variation, from requests answered at their first attempt; at least
    /// the configured minimum, at most 2 s), doubled at every attempt, so a slow path is not flooded with retries.
    /// </summary>
    public async Task RetryAsync(CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var now = Stopwatch.GetTimestamp();
                var batch = new List<Task>();
                foreach (var (id, request) in _pending)
                {
                    if (Stopwatch.GetElapsedTime(request.LastSent, now) < RetryTimeout * (1 << Math.Min(request.Attempts - 1, 6)))
                    {
                        continue;
                    }

                    if (request.Attempts >= attempts)
                    {
                        if (_pending.TryRemove(id, out _))
                        {
                            Interlocked.Increment(ref _lost);
                        }

                        continue;
                    }

                    Interlocked.Increment(ref _retries);
                    batch.Add(SendAsync(request, ct));
                }

                await Task.WhenAll(batch);
                await Task.Delay(5, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>Takes the replies: an answer to a pending request acknowledges it (a second answer is a duplicate).</summary>
    public async Task ReceiveAsync(CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var r = await socket.ReceiveFromAsync(buffer, ct);
                if (r.ReceivedBytes < 8)
                {
                    continue;
                }

                var id = (ushort)((buffer[0] << 8) | buffer[1]);
                if (id == 0)
                {
                    _check?.TrySetResult(buffer.AsSpan(0, r.ReceivedBytes).ToArray());
                }
                else if (_pending.TryRemove(id, out var request))
                {
                    Interlocked.Increment(ref _acknowledged);
                    if (request.Attempts == 1)
                    {
                        var sample = Stopwatch.GetElapsedTime(request.LastSent).TotalMilliseconds;
                        _rtts.Add(sample);
                        lock (_rttGate)
                        {
                            if (_srtt == 0)
                            {
                                (_srtt, _rttvar) = (sample, sample / 2);
                            }
                            else
                            {
                                _rttvar = (0.75 * _rttvar) + (0.25 * Math.Abs(_srtt - sample));
                                _srtt = (0.875 * _srtt) + (0.125 * sample);
                            }
                        }
                    }
                }
                else
                {
                    Interlocked.Increment(ref _duplicates);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>Acknowledged requests per bin, as (end of bin in seconds, count).</summary>
    public async Task<IReadOnlyList<(double Time, long Count)>> SampleAsync(Stopwatch clock, TimeSpan bin, TimeSpan duration, CancellationToken ct)
    {
        var result = new List<(double, long)>();
        long last = 0;
        for (var k = 1; k * bin <= duration + TimeSpan.FromMilliseconds(1); k++)
        {
            await Fig7WebService.DelayUntilAsync(clock, k * bin, ct);
            var now = Acknowledged;
            result.Add(((k * bin).TotalSeconds, now - last));
            last = now;
        }

        return result;
    }

    private static byte[] SetCommand(string key, byte[] value)
    {
        var head = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"set {key} 0 0 {value.Length}\r\n"));
        return [.. head, .. value, .. "\r\n"u8];
    }

    private byte[] RandomKey()
    {
        var key = new byte[16];
        _random.NextBytes(key);
        return key;
    }

    private ushort NextId()
    {
        while (true)
        {
            var id = (ushort)Interlocked.Increment(ref _nextId);
            if (id != 0 && !_pending.ContainsKey(id))
            {
                return id;
            }
        }
    }

    private async Task SendAsync(Request request, CancellationToken ct)
    {
        request.LastSent = Stopwatch.GetTimestamp();
        request.Attempts++;
        Interlocked.Increment(ref _sent);
        try
        {
            await socket.SendToAsync(request.Service, request.Datagram, ct);
        }
        catch (ServalException)
        {
            // No route right now: the retry timer sends it again.
        }
    }

    private sealed class Request(ServiceId service, byte[] datagram)
    {
        public ServiceId Service { get; } = service;

        public byte[] Datagram { get; } = datagram;

        public long LastSent { get; set; }

        public int Attempts { get; set; }
    }
}
