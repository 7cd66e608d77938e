namespace Serval.Stack.Streams;

/// <summary>The congestion controller a stream uses.</summary>
public enum CongestionControlAlgorithm
{
    /// <summary>CUBIC (RFC 9438), with its Reno-friendly region; the default.</summary>
    Cubic,

    /// <summary>NewReno (RFC 5681 slow start and congestion avoidance with RFC 6582-style recovery).</summary>
    NewReno,
}
