namespace Serval.Stack.Streams;

/// <summary>
/// Per-connection settings of the stream transport. Validate once with <see cref="Validate"/> (the
/// <see cref="StreamConnection"/> constructor does).
/// </summary>
public sealed record StreamOptions
{
    /// <summary>The defaults.</summary>
    public static StreamOptions Default { get; } = new();

    /// <summary>
    /// Bytes the application may have queued and unacknowledged (default 4 MiB, as Linux's largest autotuned TCP send
    /// buffer): it bounds the data in flight, so it must cover the bandwidth-delay product including the delay added
    /// when the host is busy. The storage grows on demand, so an idle or slow connection does not hold it.
    /// </summary>
    public int SendBufferSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>
    /// Bytes received but not yet read, in order or not; bounds the advertised window (default 4 MiB). The storage
    /// grows on demand.
    /// </summary>
    public int ReceiveBufferSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>
    /// Maximum segment size we advertise and the most we send per segment, TCP options included (RFC 6691): the
    /// engine sets it from the path (underlay MTU − IP − SAL − 20). Default 1400.
    /// </summary>
    public int Mss { get; init; } = 1400;

    /// <summary>Offer and use selective acknowledgements (RFC 2018).</summary>
    public bool UseSack { get; init; } = true;

    /// <summary>Offer and use timestamps (RFC 7323).</summary>
    public bool UseTimestamps { get; init; } = true;

    /// <summary>Offer and use window scaling (RFC 7323).</summary>
    public bool UseWindowScale { get; init; } = true;

    /// <summary>Congestion controller (default CUBIC).</summary>
    public CongestionControlAlgorithm CongestionControl { get; init; } = CongestionControlAlgorithm.Cubic;

    /// <summary>Send small segments at once (true, the default) or coalesce them with Nagle's algorithm (false).</summary>
    public bool NoDelay { get; init; } = true;

    /// <summary>
    /// Spread transmissions over the round trip (true, the default) at 2·cwnd/SRTT in slow start and
    /// 1.25·cwnd/SRTT afterwards, in bursts of at most about a millisecond; when false the window goes out at once.
    /// Pacing makes <see cref="StreamConnection.TryPoll"/> return false with data pending and report the next send
    /// time through <see cref="StreamConnection.NextTimeout"/>.
    /// </summary>
    public bool Pacing { get; init; } = true;

    /// <summary>
    /// Longest an acknowledgement of in-order data is delayed (default 40 ms); every second full-sized segment is
    /// acknowledged at once regardless. <see cref="TimeSpan.Zero"/> acknowledges every segment immediately.
    /// </summary>
    public TimeSpan DelayedAck { get; init; } = TimeSpan.FromMilliseconds(40);

    /// <summary>
    /// How long a connection whose buffers hold nothing (every byte sent was acknowledged, every byte received was read)
    /// keeps their storage before giving it back (default 1 s; null keeps it for the connection's life). The storage is
    /// allocated again, small, when data flows; an idle connection then holds only its control state
    /// (docs/stream-transport.md, "Memory").
    /// </summary>
    public TimeSpan? IdleBufferRelease { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Idle time before the first keepalive probe; null (the default) disables keepalives.</summary>
    public TimeSpan? KeepAlive { get; init; }

    /// <summary>
    /// User timeout (RFC 5482 semantics, like Linux's TCP_USER_TIMEOUT): the connection fails with a timeout when data it
    /// sent stays unacknowledged this long, so a dead peer is noticed in seconds instead of after every retransmission
    /// (default 20 s; null turns it off and leaves only <see cref="MaxRetransmissions"/>).
    /// </summary>
    public TimeSpan? UserTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Time between unanswered keepalive probes (default 75 s).</summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(75);

    /// <summary>Unanswered keepalive probes after which the connection times out (default 9).</summary>
    public int KeepAliveProbes { get; init; } = 9;

    /// <summary>Lower bound of the retransmission timeout (default 200 ms).</summary>
    public TimeSpan MinRto { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Upper bound of the retransmission timeout (default 60 s).</summary>
    public TimeSpan MaxRto { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Retransmission timeout before the first RTT sample (default 1 s, RFC 6298).</summary>
    public TimeSpan InitialRto { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Consecutive timeouts of the same data (or unanswered zero-window probes) after which the connection gives
    /// up with <see cref="StreamError.TimedOut"/> (default 15).
    /// </summary>
    public int MaxRetransmissions { get; init; } = 15;

    /// <summary>
    /// Challenge ACKs (RFC 5961 §7) this connection sends per second at most, in answer to in-window RSTs and SYNs,
    /// unacceptable acknowledgements and segments far outside the window (default 10; 0 sends none). Further
    /// suspicious segments are still dropped, only not answered.
    /// </summary>
    public int ChallengeAcksPerSecond { get; init; } = 10;

    /// <summary>
    /// Let a TCP RST carrying exactly the next expected sequence number close the connection (RFC 9293 with RFC 5961
    /// §3.2). False by default: on a Serval flow a genuine reset is a SAL RST carrying a nonce, which the engine
    /// checks, so a bare transport RST (which anyone who saw the flowIDs could forge) only gets a challenge ACK.
    /// Set it only when the connection runs without a SAL.
    /// </summary>
    public bool AcceptTransportResets { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (SendBufferSize < 1 || SendBufferSize > (1 << 30))
        {
            throw new ArgumentException($"{nameof(SendBufferSize)} must be between 1 byte and 1 GiB (was {SendBufferSize}).", nameof(SendBufferSize));
        }

        if (ReceiveBufferSize < 1 || ReceiveBufferSize > (1 << 30))
        {
            throw new ArgumentException($"{nameof(ReceiveBufferSize)} must be between 1 byte and 1 GiB (was {ReceiveBufferSize}).", nameof(ReceiveBufferSize));
        }

        if (Mss < 88 || Mss > 65495)
        {
            throw new ArgumentException($"{nameof(Mss)} must be between 88 and 65495 bytes (was {Mss}).", nameof(Mss));
        }

        if (!Enum.IsDefined(CongestionControl))
        {
            throw new ArgumentException($"{nameof(CongestionControl)} {CongestionControl} is not a known algorithm.", nameof(CongestionControl));
        }

        if (DelayedAck < TimeSpan.Zero || DelayedAck > TimeSpan.FromMilliseconds(500))
        {
            throw new ArgumentException($"{nameof(DelayedAck)} must be between 0 and 500 ms (RFC 9293 §3.8.6.3; was {DelayedAck}).", nameof(DelayedAck));
        }

        if (IdleBufferRelease is { } release && release < TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(IdleBufferRelease)} must be zero or more, or null (was {release}).", nameof(IdleBufferRelease));
        }

        if (KeepAlive is { } idle && idle <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(KeepAlive)} must be positive or null (was {idle}).", nameof(KeepAlive));
        }

        if (KeepAliveInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(KeepAliveInterval)} must be positive (was {KeepAliveInterval}).", nameof(KeepAliveInterval));
        }

        if (KeepAliveProbes < 1)
        {
            throw new ArgumentException($"{nameof(KeepAliveProbes)} must be at least 1 (was {KeepAliveProbes}).", nameof(KeepAliveProbes));
        }

        if (MinRto <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(MinRto)} must be positive (was {MinRto}).", nameof(MinRto));
        }

        if (MaxRto < MinRto)
        {
            throw new ArgumentException($"{nameof(MaxRto)} ({MaxRto}) must not be below {nameof(MinRto)} ({MinRto}).", nameof(MaxRto));
        }

        if (InitialRto < MinRto || InitialRto > MaxRto)
        {
            throw new ArgumentException($"{nameof(InitialRto)} ({InitialRto}) must lie between {nameof(MinRto)} and {nameof(MaxRto)}.", nameof(InitialRto));
        }

        if (UserTimeout is { } ut && ut <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(UserTimeout)} must be positive or null (was {ut}).", nameof(UserTimeout));
        }

        if (ChallengeAcksPerSecond < 0 || ChallengeAcksPerSecond > 1_000_000)
        {
            throw new ArgumentException($"{nameof(ChallengeAcksPerSecond)} must be between 0 and 1000000 (was {ChallengeAcksPerSecond}).", nameof(ChallengeAcksPerSecond));
        }

        if (MaxRetransmissions < 1 || MaxRetransmissions > 100)
        {
            throw new ArgumentException($"{nameof(MaxRetransmissions)} must be between 1 and 100 (was {MaxRetransmissions}).", nameof(MaxRetransmissions));
        }
    }
}
