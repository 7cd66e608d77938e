namespace Serval.Stack.Streams;

/// <summary>
/// Round-trip time estimation and the retransmission timeout (RFC 6298): SRTT and RTTVAR with gains 1/8 and 1/4,
/// RTO = SRTT + max(G, 4·RTTVAR) clamped to [MinRto, MaxRto], exponential backoff on expiry. Also keeps the
/// minimum RTT seen (RACK's reordering window, CUBIC). The one estimator of the stack: each stream connection has one,
/// and so has each SAL flow's control channel (<see cref="ControlChannel"/>).
/// </summary>
internal sealed class RttEstimator
{
    internal static readonly TimeSpan Granularity = TimeSpan.FromMilliseconds(1);
    private readonly TimeSpan _minRto;
    private readonly TimeSpan _maxRto;
    private TimeSpan _baseRto;

    /// <summary>Creates an estimator with no samples (RTO = <paramref name="initialRto"/>).</summary>
    public RttEstimator(TimeSpan initialRto, TimeSpan minRto, TimeSpan maxRto)
    {
        _minRto = minRto;
        _maxRto = maxRto;
        _baseRto = Clamp(initialRto);
    }

    /// <summary>Whether at least one sample was taken.</summary>
    public bool HasSample { get; private set; }

    /// <summary>Smoothed RTT (zero before the first sample).</summary>
    public TimeSpan SmoothedRtt { get; private set; }

    /// <summary>RTT variation (zero before the first sample).</summary>
    public TimeSpan RttVariance { get; private set; }

    /// <summary>Smallest sample seen (zero before the first sample).</summary>
    public TimeSpan MinRtt { get; private set; }

    /// <summary>Most recent sample.</summary>
    public TimeSpan LatestRtt { get; private set; }

    /// <summary>Number of consecutive backoffs applied to the timeout.</summary>
    public int Backoff { get; private set; }

    /// <summary>The retransmission timeout including backoff.</summary>
    public TimeSpan Rto => BackedOff(_baseRto, Backoff, _maxRto);

    /// <summary>The timeout without backoff, doubled <paramref name="backoffs"/> times (a caller counting its own retransmissions).</summary>
    public TimeSpan RtoAfter(int backoffs) => BackedOff(_baseRto, backoffs, _maxRto);

    /// <summary><paramref name="rto"/> doubled <paramref name="times"/> times, at most <paramref name="max"/> (RFC 6298 §5.5).</summary>
    public static TimeSpan BackedOff(TimeSpan rto, int times, TimeSpan max)
    {
        for (var i = 0; i < times && rto < max; i++)
        {
            rto += rto;
        }

        return rto > max ? max : rto;
    }

    /// <summary>Feeds one RTT measurement (RFC 6298 §2.2–2.4).</summary>
    public void OnSample(TimeSpan rtt)
    {
        if (rtt < TimeSpan.Zero)
        {
            return;
        }

        LatestRtt = rtt;
        if (!HasSample)
        {
            HasSample = true;
            SmoothedRtt = rtt;
            RttVariance = rtt / 2;
            MinRtt = rtt;
        }
        else
        {
            var delta = SmoothedRtt - rtt;
            if (delta < TimeSpan.Zero)
            {
                delta = -delta;
            }

            RttVariance = TimeSpan.FromTicks(((3 * RttVariance.Ticks) + delta.Ticks) / 4);
            SmoothedRtt = TimeSpan.FromTicks(((7 * SmoothedRtt.Ticks) + rtt.Ticks) / 8);
            if (rtt < MinRtt)
            {
                MinRtt = rtt;
            }
        }

        var variance = 4 * RttVariance;
        _baseRto = Clamp(SmoothedRtt + (variance > Granularity ? variance : Granularity));
    }

    /// <summary>Doubles the timeout (RFC 6298 §5.5).</summary>
    public void BackOff()
    {
        if (Backoff < 30)
        {
            Backoff++;
        }
    }

    /// <summary>Drops the backoff (new data was acknowledged).</summary>
    public void ResetBackoff() => Backoff = 0;

    /// <summary>Forgets the minimum RTT (the path changed).</summary>
    public void ResetMinRtt() => MinRtt = SmoothedRtt;

    private TimeSpan Clamp(TimeSpan rto) => rto < _minRto ? _minRto : rto > _maxRto ? _maxRto : rto;
}
