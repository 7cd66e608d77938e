namespace Serval.Stack.Streams;

/// <summary>A snapshot of one stream's counters and estimator state.</summary>
public readonly record struct StreamStatistics
{
    /// <summary>Payload bytes transmitted, retransmissions included.</summary>
    public long BytesSent { get; init; }

    /// <summary>Payload bytes retransmitted.</summary>
    public long BytesRetransmitted { get; init; }

    /// <summary>Payload bytes the peer acknowledged (delivered to it in order).</summary>
    public long BytesAcked { get; init; }

    /// <summary>New in-order payload bytes received (duplicates not counted).</summary>
    public long BytesReceived { get; init; }

    /// <summary>Segments emitted by <see cref="StreamConnection.TryPoll"/> and the handshake methods.</summary>
    public long SegmentsSent { get; init; }

    /// <summary>Segments passed in, handshake included.</summary>
    public long SegmentsReceived { get; init; }

    /// <summary>Segments retransmitted (fast, timeout or tail-loss probe).</summary>
    public long Retransmissions { get; init; }

    /// <summary>Loss-recovery episodes entered on SACK/RACK or duplicate-ACK evidence.</summary>
    public long FastRetransmits { get; init; }

    /// <summary>Retransmission-timer expirations.</summary>
    public long Timeouts { get; init; }

    /// <summary>Tail-loss probes sent (RFC 8985 §7).</summary>
    public long TailLossProbes { get; init; }

    /// <summary>Zero-window probes sent.</summary>
    public long WindowProbes { get; init; }

    /// <summary>Keepalive probes sent.</summary>
    public long KeepAliveProbes { get; init; }

    /// <summary>SACK blocks received in acknowledgements.</summary>
    public long SackBlocksReceived { get; init; }

    /// <summary>D-SACK reports received (the peer got data twice).</summary>
    public long DsacksReceived { get; init; }

    /// <summary>Window reductions undone because every retransmission proved spurious.</summary>
    public long SpuriousRecoveriesUndone { get; init; }

    /// <summary>Received segments with data that were (partly) outside the window or already received.</summary>
    public long DuplicateSegmentsReceived { get; init; }

    /// <summary>Segments received out of order (stored for reassembly).</summary>
    public long OutOfOrderSegmentsReceived { get; init; }

    /// <summary>TCP RSTs ignored: a reset needs the SAL's nonce (see <see cref="StreamOptions.AcceptTransportResets"/>).</summary>
    public long SpoofTransportResets { get; init; }

    /// <summary>TCP SYNs received on a synchronized connection (RFC 5961 §4).</summary>
    public long SpoofSyns { get; init; }

    /// <summary>FIN flags ignored because the FIN was not exactly in order; a genuine peer retransmits its FIN.</summary>
    public long SpoofFins { get; init; }

    /// <summary>Segments in the window dropped because their acknowledgement was unacceptable (RFC 5961 §5.2) or absent.</summary>
    public long AckUnacceptable { get; init; }

    /// <summary>Segments outside the receive window that were not plausible old duplicates.</summary>
    public long DataOutOfWindow { get; init; }

    /// <summary>Challenge ACKs sent (RFC 5961).</summary>
    public long ChallengeAcksSent { get; init; }

    /// <summary>Challenge ACKs not sent because of the per-connection rate limit (RFC 5961 §7).</summary>
    public long ChallengeAcksSuppressed { get; init; }

    /// <summary>Smoothed round-trip time (zero before the first sample).</summary>
    public TimeSpan SmoothedRtt { get; init; }

    /// <summary>Round-trip time variation.</summary>
    public TimeSpan RttVariance { get; init; }

    /// <summary>Smallest round-trip time seen.</summary>
    public TimeSpan MinRtt { get; init; }

    /// <summary>Current retransmission timeout, backoff included.</summary>
    public TimeSpan Rto { get; init; }

    /// <summary>Congestion window in bytes.</summary>
    public long CongestionWindow { get; init; }

    /// <summary>Slow-start threshold in bytes (very large until the first congestion event).</summary>
    public long SlowStartThreshold { get; init; }

    /// <summary>Bytes we estimate to be in the network (RFC 6675 "pipe").</summary>
    public long BytesInFlight { get; init; }

    /// <summary>The peer's advertised window in bytes (scaled).</summary>
    public long SendWindow { get; init; }

    /// <summary>The window we advertise in bytes (free receive-buffer space).</summary>
    public long ReceiveWindow { get; init; }

    /// <summary>Sender segment size in use (payload plus options).</summary>
    public int Mss { get; init; }

    /// <summary>Bytes of buffer storage the connection holds (0 when idle: docs/stream-transport.md, "Memory").</summary>
    public int BufferStorageBytes { get; init; }
}
