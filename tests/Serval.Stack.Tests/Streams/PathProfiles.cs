namespace Serval.Stack.Tests.Streams;

/// <summary>The named paths the transfer tests run over (forward = data direction, reverse = ACK direction).</summary>
internal static class PathProfiles
{
    internal const long Rate = 100_000_000;

    internal static readonly Dictionary<string, (LinkProfile Forward, LinkProfile Reverse)> Profiles = new()
    {
        ["clean-5ms"] = Symmetric(new LinkProfile { Delay = Ms(5), BitsPerSecond = Rate }),
        ["loss-1pct"] = Symmetric(new LinkProfile { Delay = Ms(10), BitsPerSecond = Rate, Loss = 0.01 }),
        ["loss-5pct"] = Symmetric(new LinkProfile { Delay = Ms(10), BitsPerSecond = Rate, Loss = 0.05 }),
        ["loss-10pct"] = Symmetric(new LinkProfile { Delay = Ms(5), BitsPerSecond = Rate, Loss = 0.10 }),
        ["reordering"] = Symmetric(new LinkProfile { Delay = Ms(10), BitsPerSecond = Rate, Reorder = 0.05, ReorderDelay = Ms(4) }),
        ["duplication"] = Symmetric(new LinkProfile { Delay = Ms(10), BitsPerSecond = Rate, Duplicate = 0.05 }),
        ["jitter-0-200ms"] = Symmetric(new LinkProfile { Delay = Ms(0), Jitter = Ms(200), BitsPerSecond = Rate }),
        ["long-200ms-lossy"] = Symmetric(new LinkProfile { Delay = Ms(100), Jitter = Ms(100), BitsPerSecond = Rate, Loss = 0.01 }),
        ["bandwidth-10mbit"] = Symmetric(new LinkProfile { Delay = Ms(20), BitsPerSecond = 10_000_000, QueueBytes = 64 * 1024 }),
        ["everything"] = Symmetric(new LinkProfile
        {
            Delay = Ms(15),
            Jitter = Ms(10),
            BitsPerSecond = 50_000_000,
            QueueBytes = 128 * 1024,
            Loss = 0.02,
            Duplicate = 0.02,
            Reorder = 0.02,
            ReorderDelay = Ms(5),
        }),
    };

    public static IEnumerable<string> Names => Profiles.Keys;

    public static (LinkProfile Forward, LinkProfile Reverse) Get(string name) => Profiles[name];

    private static TimeSpan Ms(double ms) => TimeSpan.FromMilliseconds(ms);

    private static (LinkProfile, LinkProfile) Symmetric(LinkProfile p) => (p, p);
}
