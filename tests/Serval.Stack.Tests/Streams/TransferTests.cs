using Serval.Simulation;
using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// 10 MiB bulk transfers in each direction over hostile simulated paths: every byte arrives exactly once, in
/// order (SHA-256 of what was written equals SHA-256 of what was read), and both sides close gracefully.
/// </summary>
public sealed class TransferTests
{
    internal const long TenMiB = 10L * 1024 * 1024;

    private readonly ITestOutputHelper _output;

    public TransferTests(ITestOutputHelper output) => _output = output;

    public static TheoryData<string, bool> Paths()
    {
        var data = new TheoryData<string, bool>();
        foreach (var name in PathProfiles.Names)
        {
            data.Add(name, false);
            data.Add(name, true);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Ten_MiB_arrive_intact(string path, bool serverSends)
    {
        var (forward, reverse) = PathProfiles.Get(path);
        var r = Transfers.OneWay(forward, reverse, TenMiB, seed: (ulong)path.Length * 1000 + (serverSends ? 17UL : 3UL), serverSends: serverSends);
        AssertDelivered(r, TenMiB);
    }

    public static TheoryData<string> Variants() => ["newreno", "no-sack-no-timestamps", "nagle", "tiny-buffers", "no-pacing", "no-delayed-ack"];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Option_variants_deliver_intact_over_a_lossy_path(string variant)
    {
        var options = variant switch
        {
            "newreno" => StreamOptions.Default with { CongestionControl = CongestionControlAlgorithm.NewReno },
            "no-sack-no-timestamps" => StreamOptions.Default with { UseSack = false, UseTimestamps = false },
            "nagle" => StreamOptions.Default with { NoDelay = false },
            "tiny-buffers" => StreamOptions.Default with { SendBufferSize = 8 * 1024, ReceiveBufferSize = 6 * 1024 },
            "no-pacing" => StreamOptions.Default with { Pacing = false },
            _ => StreamOptions.Default with { DelayedAck = TimeSpan.Zero },
        };
        var path = new LinkConditions { Delay = TimeSpan.FromMilliseconds(5), Jitter = TimeSpan.FromMilliseconds(2), BandwidthBitsPerSecond = 50_000_000, Loss = 0.02, Reorder = 0.01, ReorderDelay = TimeSpan.FromMilliseconds(3) };
        const long bytes = 4L * 1024 * 1024;
        var r = Transfers.OneWay(path, path, bytes, seed: (ulong)variant.Length, senderOptions: options, receiverOptions: options);
        AssertDelivered(r, bytes);
    }

    [Fact]
    public void Ten_MiB_each_way_at_the_same_time()
    {
        var (path, _) = PathProfiles.Get("everything");
        using var sim = new StreamSimulation();
        var (client, server) = sim.Connect(StreamOptions.Default, StreamOptions.Default, sim.CreateLink(path, 5), sim.CreateLink(path, 6), seed: 8);
        client.BytesToSend = TenMiB;
        server.BytesToSend = TenMiB;
        Assert.True(sim.RunUntil(
            () => client.ReadsCompletedAt is not null && server.ReadsCompletedAt is not null &&
                  client.Connection.FinAcknowledged && server.Connection.FinAcknowledged,
            TimeSpan.FromMinutes(30)));
        _output.WriteLine($"client {client.Connection.Statistics}");
        Assert.Equal(TenMiB, client.BytesRead);
        Assert.Equal(TenMiB, server.BytesRead);
        Assert.Equal(client.SentHash, server.ReceivedHash);
        Assert.Equal(server.SentHash, client.ReceivedHash);
        Assert.Equal(StreamState.TimeWait, client.Connection.State is StreamState.TimeWait ? StreamState.TimeWait : server.Connection.State);
    }

    [Fact]
    public void Slow_reader_throttles_the_sender_through_the_window()
    {
        var path = new LinkConditions { Delay = TimeSpan.FromMilliseconds(10), BandwidthBitsPerSecond = 100_000_000, Loss = 0.005 };
        using var sim = new StreamSimulation();
        var options = StreamOptions.Default with { ReceiveBufferSize = 64 * 1024 };
        var (client, server) = sim.Connect(StreamOptions.Default, options, sim.CreateLink(path, 1), sim.CreateLink(path, 2), seed: 3);
        const long bytes = 2L * 1024 * 1024;
        client.BytesToSend = bytes;

        // The reader takes a 600 ms break every 200 ms: the window closes and reopens again and again.
        Assert.True(sim.RunUntil(
            () =>
            {
                server.ReadPaused = sim.Now.TotalMilliseconds % 800 < 600;
                return server.ReadsCompletedAt is not null;
            },
            TimeSpan.FromMinutes(10),
            tick: TimeSpan.FromMilliseconds(10)));
        _output.WriteLine(client.Connection.Statistics.ToString());
        Assert.Equal(bytes, server.BytesRead);
        Assert.Equal(client.SentHash, server.ReceivedHash);
        Assert.True(client.Connection.Statistics.WindowProbes > 0);
        Assert.Equal(0, client.Connection.Statistics.Timeouts);
    }

    private void AssertDelivered(TransferResult r, long bytes)
    {
        _output.WriteLine(r.ToString());
        Assert.True(r.Completed, r.ToString());
        Assert.Equal(bytes, r.BytesSent);
        Assert.Equal(bytes, r.BytesReceived);
        Assert.True(r.HashesMatch, "SHA-256 of received data differs from sent data");
    }
}
