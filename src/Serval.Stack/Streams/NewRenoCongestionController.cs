namespace Serval.Stack.Streams;

/// <summary>NewReno window growth (RFC 5681): one segment per window of acknowledged data; halve on loss.</summary>
internal sealed class NewRenoCongestionController : CongestionController
{
    private long _bytesAcked;

    /// <summary>Creates the controller.</summary>
    public NewRenoCongestionController(int mss)
        : base(mss)
    {
    }

    /// <inheritdoc/>
    protected override void OnCongestionAvoidance(long ackedBytes, TimeSpan now, TimeSpan rtt)
    {
        _bytesAcked += ackedBytes;
        if (_bytesAcked >= Cwnd)
        {
            _bytesAcked -= Cwnd;
            Cwnd += Mss;
        }
    }

    /// <inheritdoc/>
    protected override void ReduceOnCongestion(TimeSpan now, long flightSize)
    {
        Ssthresh = Math.Max(flightSize / 2, 2L * Mss);
        _bytesAcked = 0;
    }
}
