using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    /// <summary>
    /// Moves a connection to interface <paramref name="interfaceIndex"/> (docs/protocol.md §10): sends an RSYN from the
    /// new address; the flow switches when the peer's RSYN|ACK arrives. Completion is reported by
    /// <see cref="EngineEventKind.Migrated"/>; failure after the retransmission limit closes the flow with
    /// <see cref="ServalError.MigrationFailed"/>.
    /// </summary>
    public ServalError Migrate(SocketHandle handle, int interfaceIndex, TimeSpan now)
    {
        _now = now;
        if (!_sockets.TryGetValue(handle.Value, out var s) || s is not Flow flow || flow.State == SalState.Closed)
        {
            return ServalError.BadHandle;
        }

        if (!flow.IsSynchronized || flow.State == SalState.TimeWait)
        {
            return ServalError.InvalidState;
        }

        if (!TryGetUpInterface(interfaceIndex, out var iface) || iface.IsLoopback || iface.Address.Family != flow.PeerAddress.Family)
        {
            return ServalError.NetworkDown;
        }

        StartMigration(flow, iface, now);
        return ServalError.None;
    }

    /// <summary>Moves every flow using interface <paramref name="from"/> to interface <paramref name="to"/>; returns how many started.</summary>
    public int MigrateInterface(int from, int to, TimeSpan now)
    {
        var n = 0;
        foreach (var flow in _flows.Values.Where(f => f.Interface == from && f.IsSynchronized && f.State != SalState.TimeWait).ToList())
        {
            if (Migrate(flow.Handle, to, now) == ServalError.None)
            {
                n++;
            }
        }

        return n;
    }

    /// <summary>
    /// After an interface changed state: every synchronized flow without a usable path — its interface down and no
    /// migration under way to an up one, or a migration under way to an interface that went down — moves (with
    /// <see cref="EngineOptions.AutoMigrate"/>) to the first up interface of its peer's address family; a flow with
    /// nowhere to go waits, its transport frozen, until an interface comes up or its user timeout
    /// (<see cref="StrandedTimeout"/>) runs out (<see cref="OnStrandedTimer"/>). A waiting flow whose own interface
    /// comes back resumes at once, retransmitting what was in flight.
    /// </summary>
    private void RescueFlows(TimeSpan now)
    {
        List<Flow>? affected = null;
        foreach (var flow in _flows.Values)
        {
            if (!flow.IsSynchronized || flow.State == SalState.TimeWait)
            {
                continue;
            }

            var ownUp = TryGetUpInterface(flow.Interface, out _);
            var moving = flow.Migration is MigrationState.RsynSent or MigrationState.RsynSentReceived && flow.MigrationInterface >= 0;
            var targetUp = moving && TryGetUpInterface(flow.MigrationInterface, out _);
            if ((ownUp && !moving && flow.StrandedSince is null) || targetUp)
            {
                continue;
            }

            (affected ??= []).Add(flow);
        }

        if (affected is null)
        {
            return;
        }

        foreach (var flow in affected)
        {
            var ownUp = TryGetUpInterface(flow.Interface, out _);
            var moving = flow.Migration is MigrationState.RsynSent or MigrationState.RsynSentReceived && flow.MigrationInterface >= 0;
            if (ownUp && !moving)
            {
                // A waiting flow's interface came back (same address): resume, resending what was in flight.
                flow.ClearStranded();
                if (flow.Migration == MigrationState.None)
                {
                    flow.Stream?.Resume(now, outstandingLost: true);
                }

                if (flow.Control.Pending)
                {
                    flow.Control.RetransmitNow(now);
                }

                MarkTransmit(flow);
                Schedule(flow);
                continue;
            }

            if (_options.AutoMigrate && FirstUpInterfaceFor(flow.PeerAddress) is { } to)
            {
                StartMigration(flow, to, now);
                continue;
            }

            if (!ownUp && flow.StrandedSince is null)
            {
                // Nowhere to go: nothing can be sent, so the transport stops retransmitting into the void.
                flow.MarkStranded(now);
                flow.Stream?.Freeze();
                Counters.FlowStranded();
                Schedule(flow);
            }
        }
    }

    /// <summary>
    /// Sends every outstanding RSYN (ours, unanswered, from an up interface) again now — with its relayed copy — without
    /// touching its retransmission timer or count: the caller learned that a copy sent a moment ago may have found no
    /// route (a route was just added, docs/runtime.md). Returns how many were sent.
    /// </summary>
    public int ResendRsyns(TimeSpan now)
    {
        _now = now;
        var n = 0;
        foreach (var flow in _flows.Values)
        {
            if (IsRsynOutstanding(flow) && !HasNoPath(flow))
            {
                SendControlOnly(flow, flow.Control.Flags, flow.Control.Verno);
                n++;
            }
        }

        return n;
    }

    /// <summary>The first up, non-loopback interface of <paramref name="peer"/>'s address family, or null.</summary>
    private EngineInterface? FirstUpInterfaceFor(LinkAddress peer)
    {
        foreach (var i in _interfaces)
        {
            if (i.IsUp && !i.IsLoopback && i.Address.Family == peer.Family)
            {
                return i;
            }
        }

        return null;
    }

    /// <summary>Whether a flow can send nothing at all: its interface is down and it is not moving to an up one.</summary>
    private bool HasNoPath(Flow flow) =>
        !TryGetUpInterface(flow.Interface, out _)
        && !(flow.Migration is MigrationState.RsynSent or MigrationState.RsynSentReceived && TryGetUpInterface(flow.MigrationInterface, out _));

    /// <summary>How long a flow without a path waits for one: its stream's user timeout (the engine's for datagram flows); null waits for ever.</summary>
    private TimeSpan? StrandedTimeout(Flow flow) => (flow.Stream?.Options ?? StreamOptions).UserTimeout;

    /// <summary>When a flow without a path gives up, or null (it has a path, or waits for ever).</summary>
    private TimeSpan? StrandedDeadline(Flow flow) =>
        flow.StrandedSince is { } since && StrandedTimeout(flow) is { } timeout && HasNoPath(flow) ? since + timeout : null;

    /// <summary>A flow that had no path for its user timeout fails with <see cref="ServalError.NetworkDown"/>; true when it did.</summary>
    private bool OnStrandedTimer(Flow flow, TimeSpan now)
    {
        if (StrandedDeadline(flow) is not { } deadline || now < deadline)
        {
            return false;
        }

        Counters.StrandedFailure();
        ResetFlow(flow, now, ServalError.NetworkDown);
        return true;
    }

    /// <summary>
    /// When our unanswered RSYN gives up: the flow's user timeout after the migration started (null: no RSYN of ours is
    /// outstanding, the flow waits without a path — <see cref="StrandedDeadline"/> — or the user timeout is null). Without
    /// it a migration whose peer cannot be found (both ends moved and no service router relays) would retransmit its RSYN
    /// with exponential backoff for many minutes.
    /// </summary>
    private TimeSpan? MigrationDeadline(Flow flow) =>
        flow.Migration is MigrationState.RsynSent or MigrationState.RsynSentReceived
        && flow.Control.Holds(SalControlFlags.Rsyn)
        && !(flow.StrandedSince is not null && HasNoPath(flow))
        && StrandedTimeout(flow) is { } timeout
            ? flow.MigrationStartedAt + timeout
            : null;

    /// <summary>A migration unanswered for the user timeout fails with <see cref="ServalError.MigrationFailed"/>; true when it did.</summary>
    private bool OnMigrationDeadline(Flow flow, TimeSpan now)
    {
        if (MigrationDeadline(flow) is not { } deadline || now < deadline)
        {
            return false;
        }

        Counters.MigrationFailed();
        ResetFlow(flow, now, ServalError.MigrationFailed);
        return true;
    }

    /// <summary>
    /// The error a flow reports when it ends on a time-out: <see cref="ServalError.NetworkDown"/> while it has no path
    /// (nothing could be sent: the address went away), else <paramref name="error"/>.
    /// </summary>
    private ServalError PathError(Flow flow, ServalError error) =>
        error is ServalError.TimedOut or ServalError.MigrationFailed && flow.StrandedSince is not null && HasNoPath(flow) ? ServalError.NetworkDown : error;

    private void StartMigration(Flow flow, EngineInterface iface, TimeSpan now)
    {
        var flags = SalControlFlags.Rsyn;
        if (flow.State is SalState.FinWait1 or SalState.Closing or SalState.LastAck)
        {
            flags |= SalControlFlags.Fin;
        }

        Counters.MigrationStarted();
        var verno = flow.BeginMigration(iface.Index, now);
        flow.Control.Queue(flags, verno, now);
        flow.Stream?.Freeze();
        SendControlOnly(flow, flow.Control.Flags, flow.Control.Verno);
        Schedule(flow);
    }

    /// <summary>An RSYN (peer migrates) or RSYN|ACK (our migration is answered).</summary>
    /// <remarks>
    /// Our own RSYN sits in the control slot; the RSYN|ACK we owe the peer is retransmitted on its own timer
    /// (<see cref="ControlChannel.RsynAckOwed"/>), so neither can displace the other (docs/migration-model.md).
    /// </remarks>
    private void OnRsyn(Flow flow, EngineInterface iface, LinkAddress source, SalControl c, TimeSpan now)
    {
        if (c.Has(SalControlFlags.Ack))
        {
            if (c.Ackno != flow.MigrationVerno + 1)
            {
                return;
            }

            if (flow.Migration is not (MigrationState.RsynSent or MigrationState.RsynSentReceived))
            {
                // Our final ACK was lost and the peer retransmitted its RSYN|ACK: answer again where it came from.
                SendControlOnlyTo(flow, SalControlFlags.Ack, flow.Control.SndNxt, source);
                return;
            }

            // Our RSYN was answered: switch to the new interface and address. Data in flight on the old interface is
            // presumed lost only if that interface went down (a voluntary move leaves it to loss detection).
            var oldPathUp = TryGetUpInterface(flow.Interface, out _) && flow.StrandedSince is null;
            flow.ClearStranded();
            if ((uint)flow.MigrationInterface < (uint)_interfaces.Count)
            {
                var to = _interfaces[flow.MigrationInterface];
                flow.UsePath(to.Index, to.Address);
                flow.Stream?.UpdateMss(StreamOptionsFor(to, flow.Security is not null).Mss);
            }

            Counters.MigrationCompleted(now - flow.MigrationStartedAt);

            // When the peer moves too, the flow stays RSYN-received: the peer's address is the one its RSYN came from
            // (not this RSYN|ACK's, which may be old).
            if (flow.FinishOwnMigration())
            {
                flow.Stream?.Resume(now, outstandingLost: !oldPathUp);
                Emit(new EngineEvent(EngineEventKind.Migrated, flow.Handle, Interface: flow.Interface));
            }

            // The final ACK goes back where the RSYN|ACK came from: the peer's current address.
            SendControlOnlyTo(flow, SalControlFlags.Ack, flow.Control.SndNxt, source);
            MarkTransmit(flow);
            Schedule(flow);
            return;
        }

        // The peer moves.
        flow.OnPeerMigrating(source);
        flow.Control.OnPeerVerno(c.Verno);
        flow.Stream?.Freeze();
        flow.Control.OweRsynAck(now);
        SendRsynAck(flow, source);
        if (flow.Migration == MigrationState.RsynSentReceived && !source.SameAddress(flow.PeerAddress))
        {
            // Both ends move and our RSYN went to the peer's old address: now that we know its new one, send our RSYN
            // there at once rather than at the next retransmission (it goes to MigrationPeerAddress).
            SendControlOnly(flow, flow.Control.Flags, flow.Control.Verno);
        }

        Schedule(flow);
    }

    /// <summary>
    /// Sends a copy of our unanswered RSYN through the service table towards the peer's service (docs/engine.md, "Both
    /// ends move"): a service router forwards it, like a SYN, to the service's current registration — the peer's new
    /// address when the peer moved too and re-registered. The copy carries the destination SERVICE extension and the
    /// same flowIDs, verno and nonce as the direct one; the peer answers it like any RSYN, at the SOURCE extension's first
    /// address (ours). Only the connecting side relays (it knows the peer's serviceID), only through a FORWARD rule that
    /// does not point where the direct copy goes (<paramref name="direct"/>). Sent while the RSYN is unanswered, in RsynSent
    /// and RsynSentReceived: in the latter the direct copy goes where the peer's RSYN came from, which the peer may have
    /// left again (docs/migration-model.md, fix F).
    /// </summary>
    private void RelayRsyn(Flow flow, in SalPacketRepr repr, int ifIndex, LinkAddress source, LinkAddress direct)
    {
        if (!_options.RelayRsyn || flow.Listener is not null || flow.Service.IsZero || Services.Lookup(flow.Service) is not { } entry
            || !Services.TrySelect(entry, _random, out var rule) || rule.Target.Type != ServiceTargetType.Forward)
        {
            return;
        }

        var target = rule.Target.Address;
        if (target.Family != source.Family || target.SameAddress(direct) || IsBroadcastAddress(target))
        {
            // Never a link broadcast (the ad hoc default rule): an RSYN names one flow of one peer.
            return;
        }

        SendFlowPacket(flow, ifIndex, source, target, repr with { DestinationService = flow.Service }, []);
        flow.PacketsSent++;
        Counters.RsynRelayed();
    }

    /// <summary>Sends the RSYN|ACK for the peer's migration (verno not consumed) to <paramref name="destination"/>.</summary>
    private void SendRsynAck(Flow flow, LinkAddress destination) =>
        SendControlOnlyTo(flow, SalControlFlags.Rsyn | SalControlFlags.Ack, flow.Control.SndNxt, destination);

    /// <summary>The owed RSYN|ACK's retransmission timer.</summary>
    private void OnRsynAckTimer(Flow flow, TimeSpan now)
    {
        if (flow.Control.RsynAckRetransmits >= _options.MaxControlRetransmissions)
        {
            Counters.MigrationFailed();
            ResetFlow(flow, now, ServalError.MigrationFailed);
            return;
        }

        flow.Control.OnRsynAckRetransmitted(now);
        Counters.ControlRetransmission();
        SendRsynAck(flow, flow.MigrationPeerAddress);
    }

    /// <summary>The final ACK of the peer's migration: adopt its new address and resume.</summary>
    private void CompletePeerMigration(Flow flow, TimeSpan now)
    {
        var over = flow.FinishPeerMigration();
        flow.Control.OnRsynAckAcknowledged(); // our RSYN|ACK is acknowledged; our own RSYN, if any, stays in the control slot
        if (!over)
        {
            Schedule(flow); // our own RSYN is still outstanding
            return;
        }

        flow.Stream?.Resume(now);
        MarkTransmit(flow);
        Schedule(flow);
        Emit(new EngineEvent(EngineEventKind.Migrated, flow.Handle, Interface: flow.Interface));
    }
}
