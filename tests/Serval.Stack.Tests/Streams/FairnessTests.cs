using Serval.Simulation;
using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// Flows sharing a bottleneck (20 Mbit/s, 10 ms each way, 64 KiB tail-drop queue) converge to a fair share: the
/// second flow starts a second after the first, and after 10 s their goodput over the next 30 s differs by less
/// than 20%.
/// </summary>
public sealed class FairnessTests
{
    internal const long Rate = 20_000_000;

    private readonly ITestOutputHelper _output;

    public FairnessTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(CongestionControlAlgorithm.Cubic)]
    [InlineData(CongestionControlAlgorithm.NewReno)]
    public void Two_flows_sharing_a_bottleneck_converge_to_within_20_percent(CongestionControlAlgorithm algorithm)
    {
        var options = StreamOptions.Default with { CongestionControl = algorithm };
        var bottleneck = new LinkConditions { Delay = TimeSpan.FromMilliseconds(10), BandwidthBitsPerSecond = Rate, QueueBytes = 64 * 1024 };
        var back = new LinkConditions { Delay = TimeSpan.FromMilliseconds(10), BandwidthBitsPerSecond = Rate, QueueBytes = 64 * 1024 };
        using var sim = new StreamSimulation();
        var forward = sim.CreateLink(bottleneck, 11);
        var reverse = sim.CreateLink(back, 12);

        // The first flow has the link to itself for a second before the second one starts.
        var (a, aServer) = sim.Connect(options, options, forward, reverse, seed: 21);
        a.BytesToSend = long.MaxValue;
        sim.RunUntil(() => false, TimeSpan.FromSeconds(1));
        var (b, bServer) = sim.Connect(options, options, forward, reverse, seed: 31);
        b.BytesToSend = long.MaxValue;

        // Let them converge, then measure.
        sim.RunUntil(() => false, TimeSpan.FromSeconds(10));
        var aStart = aServer.BytesRead;
        var bStart = bServer.BytesRead;
        var window = TimeSpan.FromSeconds(30);
        sim.RunUntil(() => false, window);
        var aRate = (aServer.BytesRead - aStart) * 8 / window.TotalSeconds / 1e6;
        var bRate = (bServer.BytesRead - bStart) * 8 / window.TotalSeconds / 1e6;
        _output.WriteLine($"{algorithm}: flow A {aRate:F2} Mbit/s, flow B {bRate:F2} Mbit/s, total {aRate + bRate:F2}");

        Assert.InRange(aRate / bRate, 1 / 1.2, 1.2);
        Assert.True(aRate + bRate > 0.9 * Rate / 1e6, $"the pair should fill the link ({aRate + bRate:F2} Mbit/s)");
    }
}
