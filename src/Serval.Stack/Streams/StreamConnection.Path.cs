namespace Serval.Stack.Streams;

public sealed partial class StreamConnection
{
    /// <summary>
    /// The SAL switched the flow to a newly validated path (NAT rebinding): acknowledge at once, since
    /// acknowledgements sent while the path was being validated went to the old address, and restart the
    /// retransmission backoff, which grew while the old path was failing.
    /// </summary>
    public void OnPathChanged(TimeSpan now)
    {
        _ = now;
        if (!IsSynchronized)
        {
            return;
        }

        _ackNow = true;
        _rtt.ResetBackoff();
    }
}
