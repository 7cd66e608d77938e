namespace Serval.Stack.Streams;

/// <summary>
/// The window-growth half of congestion control: slow start with HyStart++ (RFC 9406), congestion avoidance
/// (by the subclass), the reaction to a congestion event or a retransmission timeout, and undo of a reduction
/// found to be spurious. Loss detection and the recovery-time window (PRR) live in the connection. All quantities
/// are bytes.
/// </summary>
internal abstract class CongestionController
{
    /// <summary>Initial ssthresh: effectively unbounded (RFC 5681 §3.1).</summary>
    public const long InitialSsthresh = long.MaxValue / 4;

    // HyStart++ constants (RFC 9406 §4.3); L = 8 because we do not pace.
    internal const int SlowStartAckLimit = 8;
    internal const int RttSamplesPerRound = 8;
    internal const int CssGrowthDivisor = 4;
    internal const int CssRounds = 5;
    internal static readonly TimeSpan MinRttThreshold = TimeSpan.FromMilliseconds(4);
    internal static readonly TimeSpan MaxRttThreshold = TimeSpan.FromMilliseconds(16);

    private long _roundEnd = -1;
    private TimeSpan _lastRoundMinRtt = TimeSpan.MaxValue;
    private TimeSpan _currentRoundMinRtt = TimeSpan.MaxValue;
    private int _rttSamples;
    private bool _inCss;
    private int _cssRoundsDone;
    private TimeSpan _cssBaselineMinRtt = TimeSpan.MaxValue;

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

    /// <summary>Whether HyStart++ left standard slow start for conservative slow start.</summary>
    public bool InConservativeSlowStart => _inCss && InSlowStart;

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

    /// <summary>An RTT sample (HyStart++ watches the per-round minimum during slow start).</summary>
    public void OnRttSample(TimeSpan rtt)
    {
        if (!InSlowStart)
        {
            return;
        }

        if (rtt < _currentRoundMinRtt)
        {
            _currentRoundMinRtt = rtt;
        }

        _rttSamples++;
        if (_rttSamples < RttSamplesPerRound || _currentRoundMinRtt == TimeSpan.MaxValue || _lastRoundMinRtt == TimeSpan.MaxValue)
        {
            return;
        }

        if (!_inCss)
        {
            var threshold = _lastRoundMinRtt / 8;
            threshold = threshold < MinRttThreshold ? MinRttThreshold : threshold > MaxRttThreshold ? MaxRttThreshold : threshold;
            if (_currentRoundMinRtt >= _lastRoundMinRtt + threshold)
            {
                _inCss = true;
                _cssRoundsDone = 0;
                _cssBaselineMinRtt = _currentRoundMinRtt;
            }
        }
        else if (_currentRoundMinRtt < _cssBaselineMinRtt)
        {
            // The delay increase was spurious: back to standard slow start.
            _inCss = false;
            _cssBaselineMinRtt = TimeSpan.MaxValue;
        }
    }

    /// <summary>
    /// New data up to <paramref name="ackedUpTo"/> was acknowledged outside fast recovery;
    /// <paramref name="sentUpTo"/> is the highest sequence sent (HyStart++ rounds). <paramref name="cwndLimited"/>
    /// says whether the sender was limited by the window (no growth when application- or receiver-limited).
    /// </summary>
    public void OnAck(long ackedBytes, long ackedUpTo, long sentUpTo, TimeSpan now, TimeSpan rtt, bool cwndLimited)
    {
        if (ackedUpTo >= _roundEnd)
        {
            _roundEnd = sentUpTo;
            if (_inCss && InSlowStart && ++_cssRoundsDone >= CssRounds)
            {
                Ssthresh = Cwnd; // HyStart++: conservative slow start is over.
                _inCss = false;
            }

            _lastRoundMinRtt = _currentRoundMinRtt;
            _currentRoundMinRtt = TimeSpan.MaxValue;
            _rttSamples = 0;
        }

        if (ackedBytes <= 0 || !cwndLimited)
        {
            return;
        }

        if (InSlowStart)
        {
            // Byte counting (RFC 3465) with the per-ACK limit L of RFC 9406; a quarter of it in CSS.
            var increase = Math.Min(ackedBytes, (long)SlowStartAckLimit * Mss);
            if (_inCss)
            {
                increase /= CssGrowthDivisor;
            }

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
    public void OnCongestionEvent(TimeSpan now, long flightSize)
    {
        _inCss = false;
        ReduceOnCongestion(now, flightSize);
    }

    /// <summary>Sets <see cref="Ssthresh"/> (and the subclass state) for a congestion event.</summary>
    protected abstract void ReduceOnCongestion(TimeSpan now, long flightSize);

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

    /// <summary>
    /// The last reduction was spurious (every retransmission was reported duplicate): restore the window and
    /// threshold from before it (RFC 3708 / RFC 4015 response, as Linux's DSACK undo).
    /// </summary>
    public virtual void Undo(long priorCwnd, long priorSsthresh)
    {
        Cwnd = Math.Max(Cwnd, priorCwnd);
        Ssthresh = Math.Max(Ssthresh, priorSsthresh);
    }
}
