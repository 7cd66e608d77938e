namespace Serval.Stack.Streams;

/// <summary>
/// Timers: retransmission (RFC 6298) or tail-loss probe (RFC 8985 §7), RACK reordering, delayed ACK, persist
/// (zero-window probing, RFC 9293 §3.8.6.1) and keepalive (RFC 9293 §3.8.4). All are deadlines compared with the
/// <c>now</c> the engine passes; nothing runs by itself.
/// </summary>
public sealed partial class StreamConnection
{
    internal static readonly TimeSpan WorstCaseDelayedAck = TimeSpan.FromMilliseconds(200);
    internal static readonly TimeSpan MinProbeTimeout = TimeSpan.FromMilliseconds(10);

    private TimeSpan? _rtxDeadline;
    private bool _rtxIsProbe;
    private TimeSpan? _persistDeadline;
    private int _persistBackoff;
    private int _persistProbes;
    private int _keepAliveSent;
    private int _consecutiveTimeouts;

    /// <summary>
    /// The earliest deadline at which <see cref="TryPoll"/> (or <see cref="OnTimeout"/>) must be called, or null
    /// when no timer runs. While frozen only the delayed-ACK timer counts. TIME-WAIT is not a transport timer.
    /// </summary>
    public TimeSpan? NextTimeout
    {
        get
        {
            if (!IsSynchronized)
            {
                return null;
            }

            var next = _delayedAckDeadline;
            if (_frozen)
            {
                return next;
            }

            next = Earliest(next, _rtxDeadline);
            next = Earliest(next, _rack.ReorderDeadline);
            next = Earliest(next, _persistDeadline);
            next = Earliest(next, _pacer.Deadline);
            next = Earliest(next, KeepAliveDeadline);
            next = Earliest(next, UserTimeoutDeadline);
            next = Earliest(next, IdleReleaseDeadline);
            return next;
        }
    }

    /// <summary>Since when the data now outstanding has waited without the peer acknowledging anything (user timeout).</summary>
    private TimeSpan? _unackedSince;

    /// <summary>SND.UNA when <see cref="_unackedSince"/> was last set.</summary>
    private long _unackedUna = -1;

    /// <summary>Whether the connection failed because of the user timeout.</summary>
    public bool UserTimedOut { get; private set; }

    private TimeSpan? UserTimeoutDeadline =>
        _options.UserTimeout is { } t && _unackedSince is { } since && _scoreboard.Count > 0 ? since + t : null;

    /// <summary>
    /// Tracks how long outstanding data has gone unacknowledged; returns true (after closing the connection) when that
    /// reached the user timeout. Progress is noticed when a timer runs (the retransmission timer always does while data
    /// is outstanding), so the connection may fail up to one RTO late, never early.
    /// </summary>
    private bool CheckUserTimeout(TimeSpan now)
    {
        if (_options.UserTimeout is not { } timeout || _scoreboard.Count == 0)
        {
            _unackedSince = null;
            _unackedUna = -1;
            return false;
        }

        if (_unackedSince is null || _unackedUna != _send.Una)
        {
            _unackedSince = now;
            _unackedUna = _send.Una;
            return false;
        }

        if (now - _unackedSince.Value < timeout)
        {
            return false;
        }

        UserTimedOut = true;
        Terminate(StreamError.TimedOut);
        return true;
    }

    /// <summary>
    /// When an idle connection gives back its buffers' storage (<see cref="StreamOptions.IdleBufferRelease"/> after the
    /// last segment received), or null while no buffer holds storage it could give back.
    /// </summary>
    private TimeSpan? IdleReleaseDeadline =>
        _options.IdleBufferRelease is { } idle && CanReleaseBuffers ? _lastReceived + idle : null;

    private bool CanReleaseBuffers =>
        _send.CanReleaseStorage || _receive.CanReleaseStorage || (_scoreboard.Count == 0 && _scoreboard.StorageBytes > 0);

    private TimeSpan? KeepAliveDeadline =>
        _options.KeepAlive is { } idle && _state is not StreamState.TimeWait && _scoreboard.Count == 0 && !_send.HasUnsentData
            ? _lastReceived + idle + (_keepAliveSent * _options.KeepAliveInterval)
            : null;

    /// <summary>
    /// Runs the timers that expired by <paramref name="now"/> (retransmission timeout, tail-loss probe, RACK
    /// reordering timer, delayed ACK, persist, keepalive). Optional: <see cref="TryPoll"/> calls it. A timer may
    /// close the connection with <see cref="StreamError.TimedOut"/>.
    /// </summary>
    public void OnTimeout(TimeSpan now)
    {
        if (!IsSynchronized)
        {
            return;
        }

        if (_delayedAckDeadline is { } ack && now >= ack)
        {
            _delayedAckDeadline = null;
            _ackNow = true;
        }

        if (IdleReleaseDeadline is { } release && now >= release)
        {
            ReleaseIdleBuffers();
        }

        if (_frozen)
        {
            return;
        }

        if (CheckUserTimeout(now))
        {
            return;
        }

        if (_pacer.Deadline is { } pace && now >= pace)
        {
            _pacer.ClearDeadline(); // The next poll may send again.
        }

        if (_rack.ReorderTimerExpired(now))
        {
            if (_rack.DetectLoss(_scoreboard, now, _recovery.Active, DataMss) && !_recovery.Active)
            {
                EnterFastRecovery(now);
                if (!_recovery.NoCut)
                {
                    _recovery.ProportionalRateReduction(0, Pipe, DataMss);
                }
            }
        }

        if (_rtxDeadline is { } rtx && now >= rtx)
        {
            _rtxDeadline = null;
            if (_rtxIsProbe)
            {
                _rtxIsProbe = false;
                if (_scoreboard.Count > 0)
                {
                    _rack.RequestProbe();
                    ArmRetransmissionDeadline(now, allowProbe: false);
                }
            }
            else
            {
                OnRetransmissionTimeout(now);
                if (!IsSynchronized)
                {
                    return;
                }
            }
        }

        if (_persistDeadline is { } persist && now >= persist)
        {
            _persistDeadline = null;
            if (_scoreboard.Count == 0 && _send.HasUnsentData)
            {
                if (_sndWnd == 0)
                {
                    _probePending = true;
                }
                else
                {
                    _swsOverride = true;
                }
            }
        }

        if (KeepAliveDeadline is { } keepAlive && now >= keepAlive)
        {
            if (_keepAliveSent >= _options.KeepAliveProbes)
            {
                Terminate(StreamError.TimedOut);
                return;
            }

            _keepAliveSent++;
            _keepAlivePending = true;
        }
    }

    private void OnRetransmissionTimeout(TimeSpan now)
    {
        if (_scoreboard.Count == 0)
        {
            return;
        }

        _consecutiveTimeouts++;
        if (_consecutiveTimeouts > _options.MaxRetransmissions)
        {
            Terminate(StreamError.TimedOut);
            return;
        }

        _statTimeouts++;
        if (_consecutiveTimeouts == 1)
        {
            _recovery.BeginUndoEpisode(_send.Una);
        }

        _cc.OnRetransmissionTimeout(now, _send.Nxt - _send.Una, firstInEpisode: _consecutiveTimeouts == 1);
        _scoreboard.MarkUnsackedLost(); // RFC 8985 §6.3: everything not SACKed is lost.
        _recovery.EnterTimeout(_send.Nxt);
        _rack.OnRetransmissionTimeout();
        _rtt.BackOff();
        ArmRetransmissionDeadline(now, allowProbe: false);
    }

    /// <summary>
    /// (Re)starts the retransmission timer; with SACK, outside recovery and with an RTT sample, a tail-loss probe
    /// timeout of 2·SRTT (plus the worst-case delayed ACK when one segment is in flight) replaces it when shorter.
    /// </summary>
    private void ArmRetransmissionDeadline(TimeSpan now, bool allowProbe)
    {
        if (_scoreboard.Count == 0)
        {
            _rtxDeadline = null;
            _rtxIsProbe = false;
            return;
        }

        var rto = _rtt.Rto;
        if (allowProbe && _sackEnabled && !_recovery.Active && !_rack.ProbeOutstanding && _rtt.HasSample)
        {
            var pto = ProbeTimeout();
            if (pto < rto)
            {
                _rtxDeadline = now + pto;
                _rtxIsProbe = true;
                return;
            }
        }

        _rtxDeadline = now + rto;
        _rtxIsProbe = false;
    }

    /// <summary>Replaces a running retransmission timer by a tail-loss probe when that would fire earlier.</summary>
    private void MaybeArmProbe(TimeSpan now)
    {
        if (_rtxDeadline is not { } deadline || _rtxIsProbe || !_sackEnabled || _recovery.Active || _rack.ProbeOutstanding || !_rtt.HasSample)
        {
            return;
        }

        var pto = ProbeTimeout();
        if (now + pto < deadline)
        {
            _rtxDeadline = now + pto;
            _rtxIsProbe = true;
        }
    }

    private TimeSpan ProbeTimeout()
    {
        var pto = 2 * _rtt.SmoothedRtt;
        if (_scoreboard.Count == 1)
        {
            pto += WorstCaseDelayedAck;
        }

        return pto < MinProbeTimeout ? MinProbeTimeout : pto;
    }

    private TimeSpan PersistInterval()
    {
        var interval = _rtt.HasSample ? _rtt.SmoothedRtt + (4 * _rtt.RttVariance) : _options.InitialRto;
        if (interval < _options.MinRto)
        {
            interval = _options.MinRto;
        }

        for (var i = 0; i < _persistBackoff && interval < _options.MaxRto; i++)
        {
            interval += interval;
        }

        return interval > _options.MaxRto ? _options.MaxRto : interval;
    }

    private void ArmPersistIfIdle(TimeSpan now)
    {
        if (_scoreboard.Count == 0 && _persistDeadline is null && !_probePending)
        {
            _persistDeadline = now + PersistInterval();
        }
    }

    private static TimeSpan? Earliest(TimeSpan? a, TimeSpan? b) =>
        a is null ? b : b is null ? a : a.Value <= b.Value ? a : b;
}
