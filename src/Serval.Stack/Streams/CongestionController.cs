namespace Serval.Stack.Streams;

/// <summary>
/// The window-growth half of congestion control: slow start and congestion avoidance, and the reaction to a
/// congestion event or a retransmission timeout. Loss detection and the recovery-time window (PRR) live in the
/// connection. All quantities are bytes.
/// </summary>
internal abstract class CongestionController
{
    /// <summary>Initial ssthresh: effectively unbounded (RFC 5681 §3.1).</summary>
    public const long InitialSsthresh = long.MaxValue / 4;

    /// <summary>Creates a controller with the initial window of RFC 6928.</summary>
    protected CongestionController(int mss)
    {
        Mss = mss;
        Cwnd = InitialWindow(mss);
        Ssthresh = InitialSsthresh;
    }

    /// <summary>Sender maximum segment size (payload) in use.</summary>
    public int Mss { get; private set; }

    /// <summary>Congestion window.</summary>
    public long Cwnd { get; set; }

    /// <summary>Slow-start threshold.</summary>
    public long Ssthresh { get; protected set; }

    /// <summary>Whether the window is below ssthresh.</summary>
    public bool InSlowStart => Cwnd < Ssthresh;

    /// <summary>RFC 6928's initial window, min(10·MSS, max(2·MSS, 14600)).</summary>
    public static long InitialWindow(int mss) => Math.Min(10L * mss, Math.Max(2L * mss, 14600));

    /// <summary>Creates the controller <paramref name="algorithm"/> names.</summary>
    public static CongestionController Create(CongestionControlAlgorithm algorithm, int mss) => algorithm switch
    {
        CongestionControlAlgorithm.NewReno => new NewRenoCongestionController(mss),
        _ => new CubicCongestionController(mss),
    };

    /// <summary>Changes the segment size (the path changed); keeps the window in segments roughly.</summary>
    public void SetMss(int mss)
    {
        if (mss > 0 && mss != Mss)
        {
            Cwnd = Math.Max(2L * mss, Cwnd / Mss * mss);
            Mss = mss;
        }
    }

    /// <summary>
    /// New data was acknowledged outside recovery. <paramref name="cwndLimited"/> says whether the sender was
    /// limited by the window (no growth when application- or receiver-limited, RFC 7661 spirit).
    /// </summary>
    public void OnAck(long ackedBytes, TimeSpan now, TimeSpan rtt, bool cwndLimited)
    {
        if (ackedBytes <= 0 || !cwndLimited)
        {
            return;
        }

        if (InSlowStart)
        {
            // Byte counting (RFC 3465) without the per-ACK limit L, like Linux: stretch ACKs (receivers that
            // acknowledge a whole batch at once) must not slow the exponential growth down.
            var increase = ackedBytes;
            var room = Ssthresh - Cwnd;
            if (increase <= room)
            {
                Cwnd += increase;
                return;
            }

            Cwnd = Ssthresh;
            ackedBytes = increase - room;
        }

        OnCongestionAvoidance(ackedBytes, now, rtt);
    }

    /// <summary>Congestion avoidance for <paramref name="ackedBytes"/> newly acknowledged bytes.</summary>
    protected abstract void OnCongestionAvoidance(long ackedBytes, TimeSpan now, TimeSpan rtt);

    /// <summary>
    /// A loss was detected (start of fast recovery): sets <see cref="Ssthresh"/>; the window during recovery is
    /// governed by PRR and ends at ssthresh.
    /// </summary>
    public abstract void OnCongestionEvent(TimeSpan now, long flightSize);

    /// <summary>
    /// The retransmission timer expired. <paramref name="firstInEpisode"/> is false for repeated timeouts of the
    /// same data, which keep ssthresh (RFC 5681 §3.1). The window drops to one segment.
    /// </summary>
    public void OnRetransmissionTimeout(TimeSpan now, long flightSize, bool firstInEpisode)
    {
        if (firstInEpisode)
        {
            OnCongestionEvent(now, flightSize);
        }

        Cwnd = Mss;
    }
}
