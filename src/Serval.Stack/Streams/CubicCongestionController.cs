namespace Serval.Stack.Streams;

/// <summary>
/// CUBIC window growth (RFC 9438): W_cubic(t) = C·(t − K)³ + W_max with C = 0.4 and β = 0.7, fast convergence,
/// and the Reno-friendly estimate W_est that keeps it at least as aggressive as Reno on short paths.
/// </summary>
internal sealed class CubicCongestionController : CongestionController
{
    internal const double C = 0.4;
    internal const double Beta = 0.7;
    internal const double AlphaReno = 3 * (1 - Beta) / (1 + Beta);

    private double _wMax;
    private double _k;
    private double _wEst;
    private double _carry;
    private TimeSpan _epochStart;
    private bool _inEpoch;

    /// <summary>Creates the controller.</summary>
    public CubicCongestionController(int mss)
        : base(mss)
    {
    }

    /// <inheritdoc/>
    protected override void OnCongestionAvoidance(long ackedBytes, TimeSpan now, TimeSpan rtt)
    {
        double mss = Mss;
        var cwnd = Cwnd / mss;
        if (!_inEpoch)
        {
            _inEpoch = true;
            _epochStart = now;
            _carry = 0;
            if (cwnd < _wMax)
            {
                _k = Math.Cbrt((_wMax - cwnd) / C);
            }
            else
            {
                _k = 0;
                _wMax = cwnd;
            }

            _wEst = cwnd;
        }

        var t = (now - _epochStart).TotalSeconds;
        var cubicNow = _wMax + (C * Cube(t - _k));
        var target = _wMax + (C * Cube(t + rtt.TotalSeconds - _k));
        target = Math.Clamp(target, cwnd, 1.5 * cwnd);

        var ackedSegments = ackedBytes / mss;
        _wEst += (_wEst < _wMax ? AlphaReno : 1.0) * ackedSegments / cwnd;

        double next;
        if (cubicNow < _wEst)
        {
            // Reno-friendly region.
            next = Math.Max(cwnd, _wEst);
        }
        else
        {
            next = cwnd + ((target - cwnd) / cwnd * ackedSegments);
        }

        var increase = ((next - cwnd) * mss) + _carry;
        var whole = Math.Floor(increase);
        _carry = increase - whole;
        Cwnd += (long)whole;
    }

    /// <inheritdoc/>
    protected override void ReduceOnCongestion(TimeSpan now, long flightSize)
    {
        double mss = Mss;
        var cwnd = Cwnd / mss;
        _wMax = cwnd < _wMax ? cwnd * (1 + Beta) / 2 : cwnd;
        Ssthresh = Math.Max((long)(Cwnd * Beta), 2L * Mss);
        _inEpoch = false;
    }

    private static double Cube(double x) => x * x * x;
}
