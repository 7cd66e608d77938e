using System.Globalization;
using System.Text;
using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// Goodput for a grid of loss × one-way delay on a 100 Mbit/s simulated link (256 KiB tail-drop queue, loss in both
/// directions, default options: CUBIC, SACK, timestamps, 4 MiB buffers), compared with the stored table in
/// <see cref="ExpectedThroughputTable"/>. The simulation is deterministic, so a difference means the transport's
/// behaviour changed: if it is an improvement, paste the printed table into the expected one.
/// </summary>
public sealed class ThroughputTableTests
{
    internal const double Tolerance = 0.10;

    private readonly ITestOutputHelper _output;

    public ThroughputTableTests(ITestOutputHelper output) => _output = output;

    [Fact]
    [Trait("Tier", "slow")]
    public void Goodput_table_matches_the_stored_one()
    {
        var delays = ExpectedThroughputTable.DelaysMs;
        var losses = ExpectedThroughputTable.LossPercents;
        var measured = new double[losses.Length, delays.Length];
        for (var l = 0; l < losses.Length; l++)
        {
            for (var d = 0; d < delays.Length; d++)
            {
                measured[l, d] = Throughput.Goodput(TimeSpan.FromMilliseconds(delays[d]), losses[l] / 100, seed: (ulong)((l * 16) + d + 1)) / 1e6;
            }
        }

        _output.WriteLine(Format(measured));

        var failures = new StringBuilder();
        for (var l = 0; l < losses.Length; l++)
        {
            for (var d = 0; d < delays.Length; d++)
            {
                var expected = ExpectedThroughputTable.GoodputMbps[l, d];
                if (Math.Abs(measured[l, d] - expected) > Tolerance * expected)
                {
                    failures.AppendLine(CultureInfo.InvariantCulture, $"loss {losses[l]}% delay {delays[d]} ms: measured {measured[l, d]:F2}, expected {expected:F2} Mbit/s");
                }
            }
        }

        Assert.True(failures.Length == 0, failures.ToString());

        // Absolute properties, independent of the stored numbers.
        var mss = StreamOptions.Default.Mss - 12; // Payload per segment with timestamps.
        for (var d = 0; d < delays.Length; d++)
        {
            Assert.True(measured[0, d] >= 0.90 * Throughput.LinkRate / 1e6, $"0% loss, {delays[d]} ms: {measured[0, d]:F2} Mbit/s is below 90% of the link");
            var rtt = TimeSpan.FromMilliseconds(2 * delays[d]);
            var mathis = Math.Min(Throughput.Mathis(mss, rtt, 0.01), Throughput.LinkRate) / 1e6;
            var onePercent = measured[Array.IndexOf(losses, 1.0), d];
            Assert.InRange(onePercent, mathis / 2, mathis * 2);
        }
    }

    private static string Format(double[,] table)
    {
        var sb = new StringBuilder();
        sb.Append("loss \\ one-way delay");
        foreach (var d in ExpectedThroughputTable.DelaysMs)
        {
            sb.Append(CultureInfo.InvariantCulture, $" | {d,6} ms");
        }

        sb.AppendLine();
        for (var l = 0; l < ExpectedThroughputTable.LossPercents.Length; l++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{ExpectedThroughputTable.LossPercents[l],19}%");
            for (var d = 0; d < ExpectedThroughputTable.DelaysMs.Length; d++)
            {
                sb.Append(CultureInfo.InvariantCulture, $" | {table[l, d],9:F2}");
            }

            sb.AppendLine();
        }

        sb.Append("Mathis (1%)         ");
        foreach (var d in ExpectedThroughputTable.DelaysMs)
        {
            var m = Throughput.Mathis(StreamOptions.Default.Mss - 12, TimeSpan.FromMilliseconds(2 * d), 0.01) / 1e6;
            sb.Append(CultureInfo.InvariantCulture, $" | {m,9:F2}");
        }

        return sb.ToString();
    }
}
