using Serval.Simulation;
using Serval.Stack.Streams;

namespace Serval.Stack.Tests.Streams;

/// <summary>Goodput measurements in the style of smoltcp's netsim: steady-state bulk transfer over a bottleneck.</summary>
internal static class Throughput
{
    public const long LinkRate = 100_000_000;
    public const long TransferBytes = 24L * 1024 * 1024;
    public const long WarmupBytes = 4L * 1024 * 1024;
    public const int QueueBytes = 256 * 1024;

    /// <summary>
    /// Goodput in bits per second of a <see cref="TransferBytes"/> transfer over a <see cref="LinkRate"/> path with
    /// the given one-way delay and loss in both directions, measured after the first <see cref="WarmupBytes"/>
    /// (so slow start does not count) until the last byte was read.
    /// </summary>
    public static double Goodput(TimeSpan oneWayDelay, double loss, ulong seed, StreamOptions? options = null)
    {
        var profile = new LinkConditions { Delay = oneWayDelay, Loss = loss, BandwidthBitsPerSecond = LinkRate, QueueBytes = QueueBytes };
        using var sim = new StreamSimulation();
        var forward = sim.CreateLink(profile, seed * 2654435761UL + 1);
        var reverse = sim.CreateLink(profile, seed * 2654435761UL + 2);
        var (client, server) = sim.Connect(options ?? StreamOptions.Default, options ?? StreamOptions.Default, forward, reverse, seed);
        client.BytesToSend = TransferBytes;
        server.MarkAfterBytes = WarmupBytes;
        if (!sim.RunUntil(() => server.BytesRead == TransferBytes, TimeSpan.FromHours(1)))
        {
            throw new InvalidOperationException($"transfer did not complete: {client.Connection}");
        }

        var seconds = (server.LastByteReadAt!.Value - server.MarkReachedAt!.Value).TotalSeconds;
        return (server.BytesRead - server.MarkAfterBytes) * 8 / seconds;
    }

    /// <summary>Mathis et al.: MSS / RTT · 1.22 / √p, in bits per second.</summary>
    public static double Mathis(int mss, TimeSpan rtt, double loss) => mss * 8 / rtt.TotalSeconds * 1.22 / Math.Sqrt(loss);
}
