using Serval.Stack.Streams;

namespace Serval.Stack.Tests.Streams;

/// <summary>The outcome of a one-way bulk transfer in the simulator.</summary>
internal sealed record TransferResult
{
    public required bool Completed { get; init; }

    public required bool HashesMatch { get; init; }

    public required long BytesSent { get; init; }

    public required long BytesReceived { get; init; }

    public required TimeSpan Duration { get; init; }

    public required StreamStatistics SenderStatistics { get; init; }

    public required StreamStatistics ReceiverStatistics { get; init; }

    public required long Steps { get; init; }

    public double GoodputBitsPerSecond => BytesReceived * 8 / Math.Max(Duration.TotalSeconds, 1e-9);

    public override string ToString() =>
        $"completed={Completed} hash={HashesMatch} bytes={BytesReceived}/{BytesSent} time={Duration.TotalMilliseconds:F1}ms " +
        $"goodput={GoodputBitsPerSecond / 1e6:F2}Mbit/s rexmit={SenderStatistics.Retransmissions} fr={SenderStatistics.FastRetransmits} " +
        $"rto={SenderStatistics.Timeouts} tlp={SenderStatistics.TailLossProbes} srtt={SenderStatistics.SmoothedRtt.TotalMilliseconds:F1}ms " +
        $"cwnd={SenderStatistics.CongestionWindow} ssthresh={SenderStatistics.SlowStartThreshold} steps={Steps}";
}
