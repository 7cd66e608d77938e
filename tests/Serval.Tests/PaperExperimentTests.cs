using System.Globalization;
using System.Text.RegularExpressions;
using Serval.Netns;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Smoke runs of the paper's experiments (bench/experiments, docs/evaluation.md): each experiment at a short time scale
/// into a temporary folder, as the separate program <c>serval-experiments</c> (built with this project) that starts its
/// own processes in network namespaces. Asserts the summary line, the CSV and PNG, and the shape of the result. Needs
/// root.
/// </summary>
[Trait("Tier", "slow")]
public sealed partial class PaperExperimentTests(ITestOutputHelper output) : IDisposable
{
    private readonly ExperimentRun _run = new(output);

    public void Dispose() => _run.Dispose();

    [Fact]
    public async Task Fig9_the_moved_flow_gains_an_interface_and_the_other_keeps_its_share()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var line = await _run.RunAsync("fig9", TimeSpan.FromMinutes(4), "--scale", "0.3", "--rate-mbps", "40");
        var m = Fig9Line().Match(line);
        Assert.True(m.Success, $"summary line: {line}");
        var before = new[] { Number(m.Groups[1]), Number(m.Groups[2]) };
        var after = new[] { Number(m.Groups[3]), Number(m.Groups[4]) };

        // Sharing one 40 Mbit/s interface, then one interface each: the moved flow gains, the total rises by half at least.
        Assert.True(after[1] > 1.4 * before[1], $"the moved flow went from {before[1]} to {after[1]} Mbit/s ({line})");
        Assert.True(after[0] + after[1] > 1.5 * (before[0] + before[1]), $"the total went from {before[0] + before[1]} to {after[0] + after[1]} Mbit/s ({line})");
        Assert.True(after[0] > 0.5 * before[0], $"the flow that stayed fell from {before[0]} to {after[0]} Mbit/s ({line})");
        _run.AssertFigure("fig9", 2);
    }

    [Fact]
    public async Task Fig10_throughput_returns_after_the_host_moves_to_another_subnet_and_nothing_is_lost()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var line = await _run.RunAsync("fig10", TimeSpan.FromMinutes(4), "--scale", "0.4", "--rate-mbps", "40");
        var m = Fig10Line().Match(line);
        Assert.True(m.Success, $"summary line: {line}");
        Assert.Equal("0", m.Groups[2].Value);
        Assert.True(Number(m.Groups[1]) is > 0 and < 5000, $"stall of {m.Groups[1].Value} ms ({line})");

        // From the CSV: the rate after the stall comes back to at least half the rate before the move.
        var rows = _run.AssertFigure("fig10", 1);
        var moved = rows.First(r => r.Series == "event").Time;
        var series = rows.Where(r => r.Series != "event").ToArray();
        var end = series.Max(r => r.Time);
        var beforeRate = series.Where(r => r.Time > moved / 2 && r.Time < moved).Average(r => r.Value);
        var afterRate = series.Where(r => r.Time > moved + ((end - moved) / 2)).Average(r => r.Value);
        Assert.True(afterRate > 0.5 * beforeRate, $"throughput {beforeRate:F1} Mbit/s before the move, {afterRate:F1} after ({line})");
    }

    [GeneratedRegex(@"^fig9: before_mbps=([\d.]+),([\d.]+) after_mbps=([\d.]+),([\d.]+) gap_ms=([\d.]+)$")]
    private static partial Regex Fig9Line();

    [GeneratedRegex(@"^fig10: stall_ms=([\d.]+) bytes_lost=(\d+)$")]
    private static partial Regex Fig10Line();

    private static double Number(Group g) => double.Parse(g.Value, CultureInfo.InvariantCulture);
}
