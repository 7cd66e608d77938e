using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// One SAL flow's control channel (docs/protocol.md §§5–6): the control sequence space (verno/ackno), the single slot
/// holding our unacknowledged control packet (flags merged), its retransmission timer with exponential backoff, and the
/// RTT estimate behind it — the same RFC 6298 <see cref="RttEstimator"/> the stream transport uses. The engine sends
/// what the slot holds; this type only keeps the state and the timer.
/// </summary>
internal sealed class ControlChannel
{
    private TimeSpan _sentAt;
    private bool _retransmitted;

    /// <summary>A channel whose first verno is <paramref name="iss"/>, its RTO starting at <paramref name="initialRto"/>.</summary>
    public ControlChannel(uint iss, TimeSpan initialRto, TimeSpan minRto, TimeSpan maxRto)
    {
        Iss = iss;
        SndUna = iss;
        SndNxt = iss;
        Rtt = new RttEstimator(initialRto, minRto, maxRto);
    }

    /// <summary>Our initial verno (the SYN's).</summary>
    public uint Iss { get; }

    /// <summary>The oldest verno of ours the peer has not acknowledged.</summary>
    public uint SndUna { get; private set; }

    /// <summary>The next verno we use.</summary>
    public uint SndNxt { get; private set; }

    /// <summary>The next verno we expect from the peer (our ackno).</summary>
    public uint RcvNxt { get; private set; }

    /// <summary>The control channel's RTT estimate and retransmission timeout.</summary>
    public RttEstimator Rtt { get; }

    /// <summary>The retransmission timeout without backoff.</summary>
    public TimeSpan Rto => Rtt.Rto;

    /// <summary>Whether the slot holds an unacknowledged control packet.</summary>
    public bool Pending { get; private set; }

    /// <summary>The flags of the packet in the slot.</summary>
    public SalControlFlags Flags { get; private set; }

    /// <summary>The verno of the packet in the slot.</summary>
    public uint Verno { get; private set; }

    /// <summary>Retransmissions of the packet in the slot so far.</summary>
    public int Retransmits { get; private set; }

    /// <summary>When the packet in the slot is due for retransmission (meaningful while <see cref="Pending"/>).</summary>
    public TimeSpan RetransmitAt { get; private set; }

    /// <summary>Whether the slot holds a packet with <paramref name="flag"/>.</summary>
    public bool Holds(SalControlFlags flag) => Pending && (Flags & flag) != 0;

    /// <summary>Whether <paramref name="ackno"/> acknowledges the packet in the slot.</summary>
    public bool IsAcknowledgedBy(uint ackno) => Pending && Serial.Lt(Verno, ackno);

    /// <summary>Whether the packet in the slot is due for retransmission at <paramref name="now"/>.</summary>
    public bool RetransmissionDue(TimeSpan now) => Pending && now >= RetransmitAt;

    /// <summary>Our SYN consumes verno ISS: the next one is ISS + 1.</summary>
    public void OnSynSent() => SndNxt = Iss + 1;

    /// <summary>Takes the next verno (a FIN or an RSYN consumes one).</summary>
    public uint TakeVerno() => SndNxt++;

    /// <summary>The peer's packet with <paramref name="verno"/> was accepted: we expect verno + 1 next.</summary>
    public void OnPeerVerno(uint verno) => RcvNxt = verno + 1;

    /// <summary>The handshake ACK acknowledged our SYN-ACK (verno ISS).</summary>
    public void OnHandshakeAcknowledged() => SndUna = Iss + 1;

    /// <summary>
    /// Puts a control packet in the slot, merging the flags of one still unacknowledged, and starts its timer. The
    /// backoff restarts with every new control packet (ours; reference bug 16 in docs/protocol.md).
    /// </summary>
    public void Queue(SalControlFlags flags, uint verno, TimeSpan now)
    {
        if (Pending)
        {
            flags |= Flags & ~SalControlFlags.Ack;
        }

        Flags = flags;
        Verno = verno;
        Pending = true;
        Restart(now);
    }

    /// <summary>The packet in the slot leaves now for the first time (it was held): timer, backoff and RTT sample start here.</summary>
    public void Restart(TimeSpan now)
    {
        Retransmits = 0;
        _retransmitted = false;
        _sentAt = now;
        RetransmitAt = now + Rtt.Rto;
    }

    /// <summary>Processes the control ackno: frees the slot it acknowledges (an RTT sample, Karn's rule) and advances SND.UNA.</summary>
    public void Acknowledge(uint ackno, TimeSpan now)
    {
        if (IsAcknowledgedBy(ackno))
        {
            if (!_retransmitted)
            {
                Rtt.OnSample(now - _sentAt);
            }

            Pending = false;
            Retransmits = 0;
        }

        if (Serial.Gt(ackno, SndUna))
        {
            SndUna = ackno;
        }
    }

    /// <summary>The packet in the slot is being retransmitted at <paramref name="now"/>: backs the timer off.</summary>
    public void OnRetransmitted(TimeSpan now)
    {
        Retransmits++;
        _retransmitted = true;
        RetransmitAt = now + Rtt.RtoAfter(Retransmits);
    }

    /// <summary>
    /// The packet in the slot leaves again at once from a new address: the backoff starts over, but an answer may still
    /// be to the copy sent before, so no RTT sample is taken from it (Karn's rule).
    /// </summary>
    public void Resend(TimeSpan now)
    {
        Retransmits = 0;
        _retransmitted = true;
        RetransmitAt = now + Rtt.Rto;
    }

    /// <summary>Makes the packet in the slot due at once (a path came back).</summary>
    public void RetransmitNow(TimeSpan now) => RetransmitAt = now;

    /// <summary>
    /// We owe the peer an RSYN|ACK for its migration, retransmitted until its final ACK arrives. It has its own timer
    /// beside the slot, so that our own RSYN and the peer's cannot displace each other (docs/migration-model.md).
    /// </summary>
    public bool RsynAckOwed { get; private set; }

    /// <summary>When the owed RSYN|ACK is next retransmitted.</summary>
    public TimeSpan RsynAckAt { get; private set; }

    /// <summary>Retransmissions of the owed RSYN|ACK so far.</summary>
    public int RsynAckRetransmits { get; private set; }

    /// <summary>The peer's RSYN arrived: we owe it an RSYN|ACK (sent now, due again after an RTO).</summary>
    public void OweRsynAck(TimeSpan now)
    {
        RsynAckOwed = true;
        RsynAckRetransmits = 0;
        RsynAckAt = now + Rtt.Rto;
    }

    /// <summary>Whether the owed RSYN|ACK is due for retransmission at <paramref name="now"/>.</summary>
    public bool RsynAckDue(TimeSpan now) => RsynAckOwed && now >= RsynAckAt;

    /// <summary>The owed RSYN|ACK is being retransmitted at <paramref name="now"/>: backs its timer off.</summary>
    public void OnRsynAckRetransmitted(TimeSpan now)
    {
        RsynAckRetransmits++;
        RsynAckAt = now + Rtt.RtoAfter(RsynAckRetransmits);
    }

    /// <summary>The peer's final ACK of its migration arrived: nothing is owed any more.</summary>
    public void OnRsynAckAcknowledged() => RsynAckOwed = false;
}
