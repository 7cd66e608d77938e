using Serval.Simulation;

namespace Serval.Stack.Tests.Streams;

/// <summary>The named paths the transfer tests run over (forward = data direction, reverse = ACK direction).</summary>
internal static class PathProfiles
{
    internal const long Rate = 100_000_000;

    internal static readonly Dictionary<string, (LinkConditions Forward, LinkConditions Reverse)> Profiles = new()
    {
        ["clean-5ms"] = Symmetric(new LinkConditions { Delay = Ms(5), BandwidthBitsPerSecond = Rate }),
        ["loss-1pct"] = Symmetric(new LinkConditions { Delay = Ms(10), BandwidthBitsPerSecond = Rate, Loss = 0.01 }),
        ["loss-5pct"] = Symmetric(new LinkConditions { Delay = Ms(10), BandwidthBitsPerSecond = Rate, Loss = 0.05 }),
        ["loss-10pct"] = Symmetric(new LinkConditions { Delay = Ms(5), BandwidthBitsPerSecond = Rate, Loss = 0.10 }),
        ["reordering"] = Symmetric(new LinkConditions { Delay = Ms(10), BandwidthBitsPerSecond = Rate, Reorder = 0.05, ReorderDelay = Ms(4) }),
        ["duplication"] = Symmetric(new LinkConditions { Delay = Ms(10), BandwidthBitsPerSecond = Rate, Duplicate = 0.05 }),
        ["jitter-0-200ms"] = Symmetric(new LinkConditions { Delay = Ms(0), Jitter = Ms(200), BandwidthBitsPerSecond = Rate }),
        ["long-200ms-lossy"] = Symmetric(new LinkConditions { Delay = Ms(100), Jitter = Ms(100), BandwidthBitsPerSecond = Rate, Loss = 0.01 }),
        ["bandwidth-10mbit"] = Symmetric(new LinkConditions { Delay = Ms(20), BandwidthBitsPerSecond = 10_000_000, QueueBytes = 64 * 1024 }),
        ["everything"] = Symmetric(new LinkConditions
        {
            Delay = Ms(15),
            Jitter = Ms(10),
            BandwidthBitsPerSecond = 50_000_000,
            QueueBytes = 128 * 1024,
            Loss = 0.02,
            Duplicate = 0.02,
            Reorder = 0.02,
            ReorderDelay = Ms(5),
        }),
    };

    public static IEnumerable<string> Names => Profiles.Keys;

    public static (LinkConditions Forward, LinkConditions Reverse) Get(string name) => Profiles[name];

    private static TimeSpan Ms(double ms) => TimeSpan.FromMilliseconds(ms);

    private static (LinkConditions, LinkConditions) Symmetric(LinkConditions p) => (p, p);
}
