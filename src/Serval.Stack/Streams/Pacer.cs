namespace Serval.Stack.Streams;

/// <summary>
/// Pacing: a token bucket refilled at the pacing rate the congestion state gives (<see cref="Rate"/>), holding bursts of
/// about a millisecond. Without a rate (pacing off, or no RTT sample yet) every segment may go.
/// </summary>
internal struct Pacer
{
    private double _tokens;
    private TimeSpan _refilled;

    /// <summary>Creates a full bucket.</summary>
    public Pacer()
    {
        _tokens = double.MaxValue;
    }

    /// <summary>When the bucket will hold a full segment again, after <see cref="Allows"/> said no; null otherwise.</summary>
    public TimeSpan? Deadline { get; private set; }

    /// <summary>
    /// The pacing rate in bytes per second (0 = not pacing): the congestion window per smoothed RTT, with gain 2 in slow
    /// start and 1.25 after.
    /// </summary>
    public static double Rate(bool enabled, RttEstimator rtt, CongestionController cc, int mss)
    {
        if (!enabled || !rtt.HasSample)
        {
            return 0;
        }

        var srtt = Math.Max(rtt.SmoothedRtt.TotalSeconds, 1e-6);
        var gain = cc.InSlowStart ? 2.0 : 1.25;
        return gain * Math.Max(cc.Cwnd, 2L * mss) / srtt;
    }

    /// <summary>Whether the bucket holds a full segment of <paramref name="mss"/> bytes; if not, records <see cref="Deadline"/>.</summary>
    public bool Allows(TimeSpan now, double rate, int mss)
    {
        if (rate <= 0)
        {
            return true;
        }

        // Bursts of about a millisecond, at least two segments and at most 1 MiB. Runtimes wake the engine with
        // millisecond timers, so a smaller cap would limit the rate to one bucket per wake-up (64 KiB per millisecond is
        // 0.5 Gbit/s) instead of the pacing rate.
        var burst = Math.Max(2.0 * mss, Math.Min(rate / 1000, 1024.0 * 1024));
        var elapsed = (now - _refilled).TotalSeconds;
        _refilled = now;
        _tokens = Math.Min(burst, _tokens + (elapsed > 0 ? elapsed * rate : 0));
        if (_tokens >= mss)
        {
            return true;
        }

        var wait = (mss - _tokens) / rate;
        Deadline = now + TimeSpan.FromTicks(Math.Max(1, (long)Math.Ceiling(wait * TimeSpan.TicksPerSecond)));
        return false;
    }

    /// <summary><paramref name="bytes"/> went out.</summary>
    public void Consume(int bytes)
    {
        if (_tokens != double.MaxValue)
        {
            _tokens -= bytes;
        }
    }

    /// <summary>Forgets the deadline (the next poll may send again).</summary>
    public void ClearDeadline() => Deadline = null;
}
