using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    // ----------------------------------------------------------------------------------------------------------
    // The single-slot control channel (docs/protocol.md §6; "reference bug N" is item N of its "Differences")

    /// <summary>A control channel starting at verno <paramref name="iss"/>, with the engine's RTO bounds.</summary>
    private ControlChannel NewControl(uint iss) => new(iss, _options.InitialRto, _options.MinRto, _options.MaxRto);

    private void ResendControl(Flow flow, TimeSpan now)
    {
        if ((flow.Control.Flags & SalControlFlags.Syn) != 0)
        {
            if (flow.DelayedPacketId == 0)
            {
                if (flow.Security is { MustNegotiate: false, Offering: true } offer)
                {
                    // Unanswered with the offer: the peer may not know the KEYX extension (the reference drops the
                    // SYN); retransmissions go without it (docs/security.md, "Negotiation").
                    offer.Offering = false;
                    Counters.SecurityFallback();
                }

                SendSyn(flow, now);
            }

            return;
        }

        SendControlOnly(flow, flow.Control.Flags, flow.Control.Verno);
    }

    private ServalError SendSyn(Flow flow, TimeSpan now)
    {
        var repr = new SalPacketRepr
        {
            SourceFlow = flow.LocalFlow,
            Protocol = (byte)flow.Protocol,
            Control = new SalControl(SalControlFlags.Syn, flow.Control.Iss, 0, flow.LocalNonce),
            DestinationService = flow.Service,
            KeyExchange = flow.Security is { Offering: true } s ? SalKeyExchange.Offer((byte)s.Level, s.LocalShare) : null,
            Tcp = flow.Stream?.CreateSyn(now) ?? default,
            Udp = new UdpRepr { HasChecksum = true },
        };
        return SendFirst(repr, [], flow.Service, flow, null, now);
    }

    private void SendConnAck(Flow flow, TimeSpan now) => SendHandshakeAck(flow, flow.Control.SndNxt, flow.Stream?.CreateHandshakeAck() ?? default);

    /// <summary>
    /// The handshake ACK again (client side), as it was the first time — verno ISS+1, the TCP sequence number of the first
    /// unacknowledged byte — so that a server that answered with a SYN cookie can verify it (docs/engine.md, "SYN cookies").
    /// </summary>
    private void SendRepeatedHandshakeAck(Flow flow) => SendHandshakeAck(flow, flow.Control.Iss + 1, flow.Stream!.CreateRepeatedHandshakeAck());

    private void SendHandshakeAck(Flow flow, uint verno, TcpRepr tcp)
    {
        var repr = new SalPacketRepr
        {
            SourceFlow = flow.LocalFlow,
            DestinationFlow = flow.PeerFlow,
            Protocol = (byte)flow.Protocol,
            Control = new SalControl(SalControlFlags.Ack, verno, flow.Control.RcvNxt, flow.LocalNonce),
            DestinationService = flow.Service,
            Tcp = tcp,
            Udp = new UdpRepr { HasChecksum = false },
        };
        SendOnFlow(flow, repr, []);
    }

    private void SendPureAck(Flow flow) => SendControlOnly(flow, SalControlFlags.Ack, flow.Control.SndNxt);

    /// <summary>Sends a control-only packet to a given address (migration replies go where the request came from).</summary>
    private void SendControlOnlyTo(Flow flow, SalControlFlags flags, uint verno, LinkAddress destination)
    {
        var ifIndex = (flags & SalControlFlags.Rsyn) != 0 && flow.MigrationInterface >= 0 ? flow.MigrationInterface : flow.Interface;
        if (!TryGetUpInterface(ifIndex, out var iface))
        {
            return;
        }

        var repr = new SalPacketRepr
        {
            SourceFlow = flow.LocalFlow,
            DestinationFlow = flow.PeerFlow,
            Protocol = (byte)flow.Protocol,
            Control = new SalControl(flags, verno, flow.Control.RcvNxt, flow.LocalNonce),
            ControlOnly = true,
        };
        var source = ifIndex == flow.Interface ? flow.LocalAddress : iface.Address;
        var n = SendFlowPacket(flow, ifIndex, source, destination, repr, []);
        flow.PacketsSent++;
        flow.BytesSent += n;
    }

    private void SendControlOnly(Flow flow, SalControlFlags flags, uint verno)
    {
        var repr = new SalPacketRepr
        {
            SourceFlow = flow.LocalFlow,
            DestinationFlow = flow.PeerFlow,
            Protocol = (byte)flow.Protocol,
            Control = new SalControl(flags, verno, flow.Control.RcvNxt, flow.LocalNonce),
            ControlOnly = true,
        };
        SendOnFlow(flow, repr, []);
    }

    /// <summary>Sends the SAL FIN (consumes a verno) and moves to FIN-WAIT-1 or LAST-ACK.</summary>
    private void SendFin(Flow flow, TimeSpan now)
    {
        var verno = flow.Control.TakeVerno();
        flow.Control.Queue(SalControlFlags.Fin, verno, now);
        flow.State = flow.State == SalState.CloseWait ? SalState.LastAck : SalState.FinWait1;
        SendControlOnly(flow, flow.Control.Flags, flow.Control.Verno);
        Schedule(flow);
    }

    /// <summary>Sends a packet on an established flow (RSYN-flagged packets leave from the migration address).</summary>
    private void SendOnFlow(Flow flow, in SalPacketRepr repr, ReadOnlySpan<byte> payload)
    {
        var ifIndex = flow.Interface;
        var source = flow.LocalAddress;
        var destination = flow.PeerAddress;
        if (repr.Control is { } c && c.Has(SalControlFlags.Rsyn))
        {
            if (flow.MigrationInterface >= 0 && (uint)flow.MigrationInterface < (uint)_interfaces.Count)
            {
                ifIndex = flow.MigrationInterface;
                source = _interfaces[ifIndex].Address;
            }

            if (flow.Migration is MigrationState.RsynReceived or MigrationState.RsynSentReceived && !flow.MigrationPeerAddress.IsNone)
            {
                destination = flow.MigrationPeerAddress;
            }
        }

        if (!TryGetUpInterface(ifIndex, out _))
        {
            return;
        }

        var n = SendFlowPacket(flow, ifIndex, source, destination, repr, payload);
        flow.PacketsSent++;
        flow.BytesSent += n;
        if (repr.Control is { } rc && (rc.Flags & (SalControlFlags.Rsyn | SalControlFlags.Ack)) == SalControlFlags.Rsyn
            && flow.Migration is MigrationState.RsynSent or MigrationState.RsynSentReceived)
        {
            // Also in RsynSentReceived: the address the peer's RSYN came from may be gone too (it moved again).
            RelayRsyn(flow, repr, ifIndex, source, destination);
        }
    }

    /// <summary>An RST for a packet that matches no flow (never for a SYN or an RST), built from the packet alone.</summary>
    private void SendResetFor(EngineInterface iface, LinkAddress source, LinkAddress destination, in SalPacketRepr p, bool broadcast)
    {
        SalControl control;
        if (p.Control is { } c)
        {
            if (c.Has(SalControlFlags.Rst) || (c.Has(SalControlFlags.Syn) && !c.Has(SalControlFlags.Ack)))
            {
                return;
            }

            control = c.Has(SalControlFlags.Ack)
                ? new SalControl(SalControlFlags.Rst, c.Ackno, 0, c.Nonce)
                : new SalControl(
                    SalControlFlags.Rst | SalControlFlags.Ack,
                    0,
                    c.Verno + (c.Has(SalControlFlags.Syn) ? 1u : 0u) + (c.Has(SalControlFlags.Fin) ? 1u : 0u), // reference bug 8 fixed
                    c.Nonce);
        }
        else
        {
            control = new SalControl(SalControlFlags.Rst | SalControlFlags.Ack, 0, 0, default);
        }

        var repr = new SalPacketRepr
        {
            SourceFlow = p.DestinationFlow,
            DestinationFlow = p.SourceFlow,
            Protocol = p.Protocol,
            Control = control,
            ControlOnly = true,
        };
        Send(iface.Index, broadcast ? iface.Address : destination, source, repr, []);
        Counters.ResetSent();
    }

    /// <summary>Sends an active RST (if the peer is known) and ends the flow with <paramref name="error"/>.</summary>
    private void ResetFlow(Flow flow, TimeSpan now, ServalError error)
    {
        error = PathError(flow, error);
        if (flow.State is not (SalState.Init or SalState.Request or SalState.Closed or SalState.Listen))
        {
            SendControlOnly(flow, SalControlFlags.Rst | SalControlFlags.Ack, flow.Control.SndNxt);
            Counters.ResetSent();
        }

        Fail(flow, error, now);
    }

    // ----------------------------------------------------------------------------------------------------------
    // Ends of flows

    /// <summary>Ends a flow with an error (reported unless the application already released it).</summary>
    private void Fail(Flow flow, ServalError error, TimeSpan now)
    {
        if (flow.State == SalState.Closed)
        {
            return;
        }

        flow.Error = error;
        if (flow.Stream is { } st && st.State != StreamState.Closed)
        {
            st.Abort();
            while (st.TryPoll(now, _payloadScratch, out _, out _))
            {
                // The stream's own RST is not sent: the SAL already reset or lost the flow.
            }
        }

        RemoveFlow(flow);
        if (!flow.Released && (flow.Listener is null || flow.Accepted))
        {
            Emit(new EngineEvent(EngineEventKind.Closed, flow.Handle, Error: error));
        }
    }

    /// <summary>Ends a flow after the graceful close exchange.</summary>
    private void Finish(Flow flow, TimeSpan now)
    {
        _ = now;
        RemoveFlow(flow);
        if (!flow.Released)
        {
            Emit(new EngineEvent(EngineEventKind.Closed, flow.Handle));
        }
    }

    /// <summary>Removes a flow without any report (pending requests, application close before connection).</summary>
    private void Destroy(Flow flow)
    {
        flow.Released = true;
        RemoveFlow(flow);
    }

    private void RemoveFlow(Flow flow)
    {
        flow.State = SalState.Closed;
        _flows.Remove(flow.LocalFlow.Value);
        _transmitPending.Remove(flow);
        if (flow.Listener is { } l)
        {
            l.Pending.Remove((flow.PeerFlow.Value, flow.PeerNonce.Value));
            if (!flow.InAcceptQueue && !IsAccepted(flow))
            {
                flow.Released = true; // never handed to the application
            }
        }

        if (flow.DelayedPacketId != 0)
        {
            RemoveDelayed(flow.DelayedPacketId);
            flow.DelayedPacketId = 0;
        }

        if (flow.Released)
        {
            _sockets.Remove(flow.Handle.Value);
        }

        _timers.Remove(flow);
    }

    /// <summary>Entries in the timer heap, live and stale (tests: stale entries stay bounded).</summary>
    internal int TimerHeapCount => _timers.Count;

    /// <summary>Whether a server-side flow was handed out by <see cref="Accept"/>.</summary>
    private static bool IsAccepted(Flow flow) => flow.Accepted;

    private void EnterTimeWait(Flow flow, TimeSpan now)
    {
        flow.State = SalState.TimeWait;
        var rto35 = TimeSpan.FromTicks(flow.Control.Rto.Ticks * 7 / 2);
        flow.StateTimerAt = now + (rto35 > _options.TimeWait ? rto35 : _options.TimeWait);
        if (flow.Released && flow.Security is null)
        {
            CompactTimeWait(flow);
            return;
        }
        if (flow.Stream is null || flow.Stream.ReadsCompleted)
        {
            Emit(new EngineEvent(EngineEventKind.Readable, flow.Handle));
        }
    }

    // ----------------------------------------------------------------------------------------------------------
    // Timers and transport output

    private void MarkTransmit(Flow flow)
    {
        if (flow.State != SalState.Closed)
        {
            _transmitPending.Add(flow);
        }
    }

    /// <summary>Registers the flow's earliest timer with the timer heap.</summary>
    private void Schedule(Flow flow)
    {
        if (flow.State == SalState.Closed)
        {
            _timers.Set(flow, null);
            return;
        }

        TimeSpan? next = null;
        void Min(TimeSpan t) => next = next is null || t < next ? t : next;

        // A flow without a path sends nothing (retransmissions would go nowhere and use up their limits): it only
        // waits for its deadline, or for an interface (RescueFlows reschedules it).
        var stranded = flow.StrandedSince is not null && HasNoPath(flow);
        if (flow.Control.Pending && !stranded)
        {
            Min(flow.Control.RetransmitAt);
        }

        if (StrandedDeadline(flow) is { } giveUp)
        {
            Min(giveUp);
        }

        if (MigrationDeadline(flow) is { } migrationGiveUp)
        {
            Min(migrationGiveUp);
        }

        if (flow.State == SalState.Respond)
        {
            Min(flow.PendingExpiresAt);
            if (flow.SynAckRetransmits < _options.MaxSynAckRetransmissions)
            {
                Min(flow.SynAckRetransmitAt);
            }
        }

        if (flow.StateTimerAt is { } st && flow.State is SalState.TimeWait or SalState.FinWait2)
        {
            Min(st);
        }

        if (flow.Control.RsynAckOwed && !stranded)
        {
            Min(flow.Control.RsynAckAt);
        }

        if (flow.Stream is { } s && flow.IsSynchronized && s.NextTimeout is { } tt)
        {
            Min(tt);
        }

        _timers.Set(flow, next);
    }

    private readonly List<Flow> _dueScratch = [];

    private void RunTimers(TimeSpan now)
    {
        _dueScratch.Clear();
        while (_timers.TryTakeDue(now, out var flow))
        {
            _dueScratch.Add(flow);
        }

        foreach (var flow in _dueScratch)
        {
            if (flow.State != SalState.Closed)
            {
                try
                {
                    OnFlowTimer(flow, now);
                    Schedule(flow);
                }
                catch (Exception ex)
                {
                    OnFault(flow, "timer", ex, now);
                }
            }
        }

        _dueScratch.Clear();

        ExpireTimeWait(now);
        if (Services.NextExpiry is { } e && e <= now)
        {
            Services.Expire(now);
        }
    }

    private void OnFlowTimer(Flow flow, TimeSpan now)
    {
        if (flow.State == SalState.Respond)
        {
            if (now >= flow.PendingExpiresAt)
            {
                Destroy(flow);
                return;
            }

            if (flow.SynAckRetransmits < _options.MaxSynAckRetransmissions && now >= flow.SynAckRetransmitAt && AwaitsHandshakeAck(flow))
            {
                Counters.ControlRetransmission();
                SendSynAck(flow, now);
                // Exponential backoff, each gap capped so that every retransmission fits in the request's lifetime.
                var gap = RttEstimator.BackedOff(_options.InitialRto, flow.SynAckRetransmits + 1, _options.MaxRto);
                var cap = _options.PendingRequestLifetime / (_options.MaxSynAckRetransmissions + 1);
                flow.OnSynAckRetransmitted(now + (gap < cap ? gap : cap));
            }
        }

        var stranded = flow.StrandedSince is not null && HasNoPath(flow);
        if (stranded && OnStrandedTimer(flow, now))
        {
            return;
        }

        if (OnMigrationDeadline(flow, now))
        {
            return;
        }

        if (!stranded && flow.Control.RetransmissionDue(now))
        {
            if (flow.Control.Retransmits >= _options.MaxControlRetransmissions)
            {
                if (flow.Migration != MigrationState.None)
                {
                    Counters.MigrationFailed();
                }

                ResetFlow(flow, now, flow.Migration == MigrationState.None ? ServalError.TimedOut : ServalError.MigrationFailed);
                return;
            }

            flow.Control.OnRetransmitted(now);
            Counters.ControlRetransmission();
            ResendControl(flow, now);
        }

        if (!stranded && flow.Control.RsynAckDue(now))
        {
            OnRsynAckTimer(flow, now);
            if (flow.State == SalState.Closed)
            {
                return;
            }
        }

        if (flow.StateTimerAt is { } st && now >= st && flow.State is SalState.TimeWait or SalState.FinWait2)
        {
            Finish(flow, now);
            return;
        }

        if (flow.Stream is { } s && flow.IsSynchronized && s.NextTimeout is { } tt && now >= tt)
        {
            s.OnTimeout(now);
            MarkTransmit(flow);
            if (flow.Listener is null && flow.State == SalState.Connected && flow.HandshakeAckMayBeLost(s.RetransmissionTimeouts))
            {
                // Our data went unanswered and nothing at all came back since the SYN-ACK: the handshake ACK may have
                // been lost, and a server that answered with a SYN cookie has no other way to learn of the connection.
                SendRepeatedHandshakeAck(flow);
            }
        }
    }

    /// <summary>Pumps stream output for flows that may have something to send, and moves closes along.</summary>
    private void FlushTransports(TimeSpan now)
    {
        if (_transmitPending.Count == 0)
        {
            return;
        }

        _transmitScratch.Clear();
        foreach (var pending in _transmitPending)
        {
            _transmitScratch.Add(pending); // (AddRange would box the set's enumerator)
        }

        _transmitPending.Clear();
        foreach (var flow in _transmitScratch)
        {
            if (flow.State == SalState.Closed)
            {
                continue;
            }

            try
            {
                FlushTransport(flow, now);
            }
            catch (Exception e)
            {
                OnFault(flow, "output", e, now);
            }
        }

        _transmitScratch.Clear(); // (holds no removed flow until the next round)
    }

    /// <summary>
    /// Sends a stream segment whose payload is still in the send buffer at <paramref name="position"/>. During a poll,
    /// on a link interface of a flow without keys, it is built in place: headers, then the payload copied from the send
    /// buffer with its checksum summed in the same pass, into the link's transmit slot when the sink offers one (else
    /// into the engine's packet buffer, handed to the sink at once). Otherwise through <see cref="SendOnFlow"/>.
    /// docs/engine.md, "Output path".
    /// </summary>
    private void SendSegment(Flow flow, StreamConnection st, in SalPacketRepr repr, long position, int length)
    {
        var ifIndex = flow.Interface;
        if (_sink is not { } sink || ifIndex == 0 || flow.Security is { Established: true })
        {
            var payload = _payloadScratch.AsSpan(0, length);
            st.CopyPayload(position, payload);
            SendOnFlow(flow, repr, payload);
            return;
        }

        if (!TryGetUpInterface(ifIndex, out _))
        {
            return;
        }

        var source = flow.LocalAddress;
        var destination = flow.PeerAddress;
        DrainOutbound(sink); // packets queued before this one leave before it
        var total = repr.GetLength(length);
        var slot = sink.GetTransmitSlot(ifIndex, total);
        var inSlot = slot.Length >= total;
        var buffer = inSlot ? slot : _scratch.AsSpan();
        var hl = repr.EmitHeaders(buffer, length);
        flow.PacketsSent++;
        if (hl == 0)
        {
            return;
        }

        var sum = st.CopyPayloadWithSum(position, buffer.Slice(hl, length));
        repr.FillTransportChecksum(buffer[..total], TransportPseudoHeader.ForLink(source, destination), hl, sum);
        Counters.Sent(total);
        flow.BytesSent += total;
        if (inSlot)
        {
            sink.CommitTransmitSlot(ifIndex, source, destination, total, IPHopLimit.Unknown);
        }
        else
        {
            sink.Send(ifIndex, source, destination, buffer[..total], IPHopLimit.Unknown);
        }
    }

    private void FlushTransport(Flow flow, TimeSpan now)
    {
        if (flow.Stream is { } st && flow.IsSynchronized)
        {
            var frozen = flow.Migration != MigrationState.None;
            var budget = 4096;
            while (!frozen && budget-- > 0 && st.TryPollSegment(now, _payloadScratch.Length, out var seg, out var position, out var len))
            {
                var repr = new SalPacketRepr
                {
                    SourceFlow = flow.LocalFlow,
                    DestinationFlow = flow.PeerFlow,
                    Protocol = SalPacketRepr.ProtocolTcp,
                    Tcp = seg,
                };
                SendSegment(flow, st, repr, position, len);
            }

            if (st.Error != StreamError.None && st.State == StreamState.Closed)
            {
                if (st.UserTimedOut)
                {
                    Counters.UserTimeout();
                }

                var error = st.Error switch
                {
                    StreamError.Reset => ServalError.ConnectionReset,
                    StreamError.TimedOut => ServalError.TimedOut,
                    StreamError.Refused => ServalError.ConnectionRefused,
                    _ => ServalError.Aborted,
                };
                ResetFlow(flow, now, error);
                return;
            }

            if (st.FinAcknowledged && flow.State is SalState.Connected or SalState.CloseWait)
            {
                // The reference's order (docs/protocol.md §6, §13): the SAL FIN follows as soon as our transport FIN is
                // acknowledged, whether the application completed its writes (half-close) or closed; it does not wait
                // for the application to release the flow, and data from the peer keeps arriving until its own FIN.
                SendFin(flow, now);
            }
            else if (flow.Released && flow.State is SalState.Connected or SalState.CloseWait && !flow.CloseRequested)
            {
                flow.RequestClose();
                st.CompleteWrites();
            }
        }

        Schedule(flow);
    }
}
