using System.Globalization;
using System.Text.RegularExpressions;
using Serval.Netns;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Smoke runs of the paper's service experiments (bench/experiments, docs/evaluation.md): fig7 (replicated web service)
/// and fig8 (partitioned key-value store), each at a short time scale into a temporary folder, as the separate program
/// <c>serval-experiments</c> (built with this project) that builds its namespaces and starts its own processes. Asserts
/// the summary line, the CSV and PNG, and the shape of the result. Needs root.
/// </summary>
[Trait("Tier", "slow")]
public sealed partial class PaperServiceExperimentTests(ITestOutputHelper output) : IDisposable
{
    private readonly ExperimentRun _run = new(output);

    public void Dispose() => _run.Dispose();

    [Fact]
    public async Task Fig7_the_request_rate_follows_the_instances_and_haproxy_is_held_to_one_link()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var line = await _run.RunAsync("fig7", TimeSpan.FromMinutes(5), "--scale", "0.2", "--rate-mbps", "10", "--object-kb", "128", "--inflight", "4", "--clients", "2");
        var m = Fig7Line().Match(line);
        Assert.True(m.Success, $"summary line: {line}");
        var rps = m.Groups[1].Value.Split(',').Select(Parse).ToArray();
        var gbps = m.Groups[2].Value.Split(',').Select(Parse).ToArray();
        var haproxy = Parse(m.Groups[4].Value);

        // 2 -> 4 -> 2 -> 3 instances of 10 Mbit/s each: the rate rises when instances join and falls when they leave.
        Assert.True(rps[1] > 1.3 * rps[0], $"2 instances {rps[0]} req/s, then 4: {rps[1]} ({line})");
        Assert.True(rps[2] < 0.8 * rps[1], $"4 instances {rps[1]} req/s, then 2: {rps[2]} ({line})");
        Assert.True(rps[3] > 1.2 * rps[2], $"2 instances {rps[2]} req/s, then 3: {rps[3]} ({line})");

        // haproxy's own link (10 Mbit/s) carries every response: it stays below what four instances served over Serval.
        Assert.True(haproxy > 0 && haproxy < gbps[1], $"haproxy {haproxy} Gbit/s, Serval with 4 instances {gbps[1]} ({line})");

        var rows = _run.AssertFigure("fig7", 6);
        Assert.Contains(rows, r => r.Series == "instance 5" && r.Value > 0);
        _run.AssertFigure("fig7-rps", 6);
    }

    [Fact]
    public async Task Fig8_partitions_move_to_the_remaining_servers_and_back_without_losing_requests()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var line = await _run.RunAsync("fig8", TimeSpan.FromMinutes(5), "--scale", "0.3", "--rate", "300");
        var m = Fig8Line().Match(line);
        Assert.True(m.Success, $"summary line: {line}");
        var offered = Parse(m.Groups[1].Value);
        var served = Parse(m.Groups[2].Value);
        var lost = Parse(m.Groups[3].Value);
        var moves = Parse(m.Groups[4].Value);
        Assert.True(served >= 0.9 * offered, $"served {served}/s of {offered}/s offered ({line})");
        Assert.True(lost <= 0.01 * offered * 15, $"{lost} requests lost ({line})");

        // 4+4+4+4 -> 6+5+5 (4 moves) -> 8+8 (5) -> 5/6 each of three (5) -> 4 each (4).
        Assert.Equal(18, moves);

        // Server 4 (left at 3 s, back at 9 s) serves nothing in the second half of its absence and again after it returns.
        var rows = _run.AssertFigure("fig8", 4);
        var server4 = rows.Where(r => r.Series == "server 4").ToArray();
        // Up to half a second before its return: a sample stamped just before 9 s can hold its first requests back.
        var absent = server4.Where(r => r.Time > 5 && r.Time <= 8.5).Select(r => r.Value).ToArray();
        var back = server4.Where(r => r.Time > 10.5).Select(r => r.Value).ToArray();
        Assert.True(absent.Length > 0 && absent.Max() < 5, $"server 4 while away: {string.Join(", ", absent)} req/s");
        Assert.True(back.Length > 0 && back.Average() > 0.1 * offered, $"server 4 after its return: {string.Join(", ", back)} req/s");
    }

    [GeneratedRegex(@"^fig7: phases_rps=([\d.]+(?:,[\d.]+){3}) phases_gbps=([\d.]+(?:,[\d.]+){3}) per_instance_spread=([\d.]+) haproxy_gbps=([\d.]+)$")]
    private static partial Regex Fig7Line();

    [GeneratedRegex(@"^fig8: offered_rps=(\d+) served_rps=(\d+) lost=(\d+) partition_moves=(\d+) max_imbalance=([\d.]+)$")]
    private static partial Regex Fig8Line();

    private static double Parse(string s) => double.Parse(s, CultureInfo.InvariantCulture);
}
