namespace Serval.Stack.Streams;

/// <summary>
/// Defences against blind in-window attacks (RFC 5961 adapted to the SAL): counters and the challenge-ACK rate
/// limit (RFC 5961 §7). The checks themselves are in <see cref="OnSegment"/>.
/// </summary>
public sealed partial class StreamConnection
{
    private EngineCounters? _defenceCounters;
    private long _statSpoofTransportRsts;
    private long _statSpoofSyns;
    private long _statSpoofFins;
    private long _statAckUnacceptable;
    private long _statDataOutOfWindow;
    private long _statChallengeAcksSent;
    private long _statChallengeAcksSuppressed;
    private TimeSpan? _challengeWindowStart;
    private int _challengeAcksInWindow;

    /// <summary>
    /// As <see cref="OnSegment"/> (for the engine), and adds every defence the
    /// segment triggered to the engine's <paramref name="counters"/> as well as to this connection's statistics.
    /// </summary>
    internal void OnFlowSegment(in Serval.Wire.TcpRepr segment, ReadOnlySpan<byte> payload, TimeSpan now, EngineCounters counters)
    {
        _defenceCounters = counters;
        try
        {
            OnSegment(segment, payload, now);
        }
        finally
        {
            _defenceCounters = null;
        }
    }

    private void Defended(TransportDefence kind)
    {
        switch (kind)
        {
            case TransportDefence.SpoofTransportRst:
                _statSpoofTransportRsts++;
                break;
            case TransportDefence.SpoofSyn:
                _statSpoofSyns++;
                break;
            case TransportDefence.SpoofFin:
                _statSpoofFins++;
                break;
            case TransportDefence.AckUnacceptable:
                _statAckUnacceptable++;
                break;
            case TransportDefence.DataOutOfWindow:
                _statDataOutOfWindow++;
                break;
            case TransportDefence.ChallengeAckSent:
                _statChallengeAcksSent++;
                break;
            case TransportDefence.ChallengeAckSuppressed:
                _statChallengeAcksSuppressed++;
                break;
        }

        _defenceCounters?.TransportDefence(kind);
    }

    /// <summary>
    /// Answers a suspicious segment with an ACK of the current state (RFC 5961 §§3–5), at most
    /// <see cref="StreamOptions.ChallengeAcksPerSecond"/> per second for this connection (§7). The limit is per
    /// connection, not per host, so the number of challenge ACKs one connection sends says nothing about another
    /// (the side channel of CVE-2016-5696).
    /// </summary>
    private void ChallengeAck(TimeSpan now)
    {
        if (_challengeWindowStart is not { } start || now - start >= TimeSpan.FromSeconds(1) || now < start)
        {
            _challengeWindowStart = now;
            _challengeAcksInWindow = 0;
        }

        if (_challengeAcksInWindow < _options.ChallengeAcksPerSecond)
        {
            _challengeAcksInWindow++;
            _ackNow = true;
            Defended(TransportDefence.ChallengeAckSent);
        }
        else
        {
            Defended(TransportDefence.ChallengeAckSuppressed);
        }
    }
}
