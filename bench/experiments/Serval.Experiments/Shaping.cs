using System.Globalization;
using Serval.Netns;

namespace Serval.Experiments;

/// <summary>Link shaping and machine facts shared by the experiments.</summary>
internal static class Shaping
{
    /// <summary>
    /// A token bucket on <paramref name="device"/>'s egress: <c>tbf rate R burst 32kb latency 20ms</c> (a queue of 20 ms
    /// at the rate, so the sender is backlogged and the queue sits in the network, not in a host).
    /// </summary>
    public static void Apply(NetNamespace ns, string device, double mbps)
    {
        ns.Ip("link", "set", "dev", device, "txqueuelen", "1000");
        ns.Exec("tc", "qdisc", "replace", "dev", device, "root", "tbf", "rate", string.Create(CultureInfo.InvariantCulture, $"{mbps}mbit"), "burst", "32kb", "latency", "20ms");
    }

    /// <summary>The 1, 5 and 15 minute load averages (/proc/loadavg).</summary>
    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
}
