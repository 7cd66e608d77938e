using System.Diagnostics;
using System.Globalization;
using Serval.Netns;

namespace Serval.Experiments;

/// <summary>
/// Figure 9, interface load balancing (docs/evaluation.md). A server namespace with two interfaces (<c>s0</c>
/// 10.70.1.1/24, <c>s1</c> 10.70.2.1/24), each shaped to the same rate with tbf, reaches two client namespaces through a
/// router namespace. Both clients connect to the server's first address and the server sends a bulk stream to each, so
/// both flows share interface 1. At t=6 s (times the scale) the server moves the second flow to its second interface
/// (<see cref="ServalConnection.MigrateAsync"/>: an RSYN from 10.70.2.1); each flow should then get a whole interface.
/// Options: <c>--rate-mbps</c> (per interface, default 50: two flows of up to 50 Mbit/s each, which the three
/// processes sustain on a busy 2-core machine), <c>--scale</c>.
/// </summary>
internal sealed class Fig9InterfaceBalancing : Experiment
{
    public override string Name => "fig9";

    public override IReadOnlyDictionary<string, Func<string[], Task<int>>> Roles => BulkRoles.All;

    public override async Task<int> RunAsync(ExperimentOptions options)
    {
        if (NetNamespace.UnsupportedReason is { } reason)
        {
            Console.Error.WriteLine($"fig9: cannot run: {reason}");
            return 2;
        }

        var rate = options.GetDouble("rate-mbps", 50);
        var scale = options.TimeScale;
        var migrateAt = 6 * scale;
        var end = 14 * scale;
        var interval = Math.Clamp(200 * scale, 50, 200);

        await using var srv = NetNamespace.Create("f9srv");
        await using var rt = NetNamespace.Create("f9rt");
        await using var c1 = NetNamespace.Create("f9c1");
        await using var c2 = NetNamespace.Create("f9c2");
        Veth.Connect(srv, "s0", "10.70.1.1/24", rt, "r0", "10.70.1.254/24");
        Veth.Connect(srv, "s1", "10.70.2.1/24", rt, "r1", "10.70.2.254/24");
        Veth.Connect(c1, "e0", "10.70.11.1/24", rt, "r11", "10.70.11.254/24");
        Veth.Connect(c2, "e0", "10.70.12.1/24", rt, "r12", "10.70.12.254/24");
        rt.Sysctl("net.ipv4.ip_forward", "1");
        c1.Ip("route", "add", "default", "via", "10.70.11.254");
        c2.Ip("route", "add", "default", "via", "10.70.12.254");
        // The server sends from each address through that address's interface (source routing, two tables).
        srv.IpBatch(
            "route add default via 10.70.1.254",
            "rule add from 10.70.1.1 table 101 pref 1001",
            "route add default via 10.70.1.254 dev s0 table 101",
            "rule add from 10.70.2.1 table 102 pref 1002",
            "route add default via 10.70.2.254 dev s1 table 102");
        foreach (var dev in new[] { "s0", "s1" })
        {
            Shaping.Apply(srv, dev, rate);
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig9: server interfaces s0, s1 shaped to {rate} Mbit/s each; migration at {migrateAt:0.##} s, end at {end:0.##} s"));
        await using var server = RoleProcess.Start(srv, "server", BulkRoles.Server, "fig9", "--links", "10.70.1.1,10.70.2.1");
        await server.WaitForAsync("ready", TimeSpan.FromSeconds(90));
        var ms = interval.ToString(CultureInfo.InvariantCulture);
        await using var client1 = RoleProcess.Start(c1, "client1", BulkRoles.Client, "fig9", "10.70.11.1", "10.70.1.1", ms);
        await using var client2 = RoleProcess.Start(c2, "client2", BulkRoles.Client, "fig9", "10.70.12.1", "10.70.1.1", ms);
        await client1.WaitForAsync("connected", TimeSpan.FromSeconds(90));
        await client2.WaitForAsync("connected", TimeSpan.FromSeconds(90));
        var trace1 = ReceiverTrace.Follow(client1);
        var trace2 = ReceiverTrace.Follow(client2);
        await server.WaitForAsync("accepted 0", TimeSpan.FromSeconds(30));
        await server.WaitForAsync("accepted 1", TimeSpan.FromSeconds(30));

        // Which accepted connection is client 2's (the one to move).
        server.Send("flow 0");
        var flow0 = await server.WaitForAsync("flow 0", TimeSpan.FromSeconds(10));
        var moved = flow0.Contains("10.70.12.1", StringComparison.Ordinal) ? 0 : 1;

        var zero = Stopwatch.GetTimestamp();
        var figure = new Figure(
            "fig9",
            string.Create(CultureInfo.InvariantCulture, $"Figure 9: interface load balancing (two server interfaces, tbf {rate:0} Mbit/s each)"),
            "time (s)",
            "throughput (Mbit/s)");
        await SleepUntilAsync(zero, migrateAt);
        var migrateTime = ReceiverTrace.Seconds(zero, Stopwatch.GetTimestamp());
        server.Send($"migrate {moved} 1");
        figure.Mark(migrateTime, "server moves flow 2 to interface 2");
        var migrated = await server.WaitForAsync("migrated", TimeSpan.FromSeconds(15), l => Console.Error.WriteLine($"[server] {l}"));
        var rsynMs = double.Parse(migrated.Split(' ')[2], CultureInfo.InvariantCulture);
        await SleepUntilAsync(zero, end);
        server.Send("stop");
        var sent = new Dictionary<int, (long Bytes, string Hash)>();
        for (var i = 0; i < 2; i++)
        {
            var w = (await server.WaitForAsync("sent", TimeSpan.FromSeconds(30), l => Console.Error.WriteLine($"[server] {l}"))).Split(' ');
            sent[int.Parse(w[1], CultureInfo.InvariantCulture)] = (long.Parse(w[2], CultureInfo.InvariantCulture), w[3]);
        }

        await server.WaitForAsync("stopped", TimeSpan.FromSeconds(30), l => Console.Error.WriteLine($"[server] {l}"));
        var drained = await trace1.WaitDoneAsync(TimeSpan.FromSeconds(30)) & await trace2.WaitDoneAsync(TimeSpan.FromSeconds(30));

        foreach (var (series, trace) in new[] { ("flow 1 (stays on interface 1)", trace1), ("flow 2 (moved to interface 2)", trace2) })
        {
            foreach (var (t, mbps) in trace.Throughput(zero).Where(p => p.Time <= end))
            {
                figure.Add(series, t, mbps);
            }
        }

        var (csv, png) = figure.Save(options.OutputDirectory);
        Console.Error.WriteLine($"fig9: wrote {csv} and {png}");

        // Before: the second half of the shared phase; after: the move's phase without its first quarter (convergence).
        var (b0, b1) = (migrateTime / 2, migrateTime);
        var (a0, a1) = (migrateTime + ((end - migrateTime) / 4), end);
        var before = new[] { trace1.MeanMbps(zero, b0, b1), trace2.MeanMbps(zero, b0, b1) };
        var after = new[] { trace1.MeanMbps(zero, a0, a1), trace2.MeanMbps(zero, a0, a1) };
        var (gap, _) = trace2.LongestPauseAfter(zero, migrateTime);

        var problems = new List<string>();
        if (!drained)
        {
            problems.Add("a client did not read its stream to the end");
        }

        var clients = new[] { (Trace: trace1, Flow: 1 - moved), (Trace: trace2, Flow: moved) };
        foreach (var (trace, flow) in clients)
        {
            if (trace.FinalBytes != sent[flow].Bytes || trace.FinalHash != sent[flow].Hash)
            {
                problems.Add($"connection {flow}: sent {sent[flow].Bytes} bytes, the client read {trace.FinalBytes} (hashes {(trace.FinalHash == sent[flow].Hash ? "equal" : "differ")})");
            }
        }

        if (before.Concat(after).Any(v => v <= 0))
        {
            problems.Add("a flow carried nothing in a phase");
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig9: before window {b0:0.##}-{b1:0.##} s, after window {a0:0.##}-{a1:0.##} s; migration (RSYN to flow on link 2) {rsynMs:0.##} ms; load average {Shaping.LoadAverage()}"));
        foreach (var p in problems)
        {
            Console.Error.WriteLine($"fig9: invalid run: {p}");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig9: before_mbps={before[0]:F1},{before[1]:F1} after_mbps={after[0]:F1},{after[1]:F1} gap_ms={gap:F1}"));
        return problems.Count == 0 ? 0 : 1;
    }

    /// <summary>Waits until <paramref name="seconds"/> after <paramref name="zero"/>.</summary>
    internal static async Task SleepUntilAsync(long zero, double seconds)
    {
        var left = seconds - ReceiverTrace.Seconds(zero, Stopwatch.GetTimestamp());
        if (left > 0)
        {
            await Task.Delay(TimeSpan.FromSeconds(left));
        }
    }
}
