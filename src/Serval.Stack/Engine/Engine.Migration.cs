using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    /// <summary>
    /// Moves a connection to interface <paramref name="interfaceIndex"/> (PROTOCOL.md §10): sends an RSYN from the
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

    private void StartMigration(Flow flow, EngineInterface iface, TimeSpan now)
    {
        flow.MigrationInterface = iface.Index;
        flow.Migration = flow.Migration switch
        {
            MigrationState.RsynReceived or MigrationState.RsynSentReceived => MigrationState.RsynSentReceived,
            _ => MigrationState.RsynSent,
        };
        var flags = SalControlFlags.Rsyn;
        if (flow.State is SalState.FinWait1 or SalState.Closing or SalState.LastAck)
        {
            flags |= SalControlFlags.Fin;
        }

        Counters.MigrationStarted();
        flow.MigrationStartedAt = now;
        flow.MigrationVerno = flow.SndNxt;
        flow.SndNxt++;
        QueueControl(flow, flags, flow.MigrationVerno, now);
        flow.Stream?.Freeze();
        SendControlOnly(flow, flow.ControlFlags, flow.ControlVerno);
        Schedule(flow);
    }

    /// <summary>An RSYN (peer migrates) or RSYN|ACK (our migration is answered).</summary>
    private void OnRsyn(Flow flow, EngineInterface iface, LinkAddress source, SalControl c, TimeSpan now)
    {
        if (c.Has(SalControlFlags.Ack))
        {
            if (flow.Migration is not (MigrationState.RsynSent or MigrationState.RsynSentReceived) || c.Ackno != flow.MigrationVerno + 1)
            {
                return;
            }

            // Our RSYN was answered: switch to the new interface and address.
            if ((uint)flow.MigrationInterface < (uint)_interfaces.Count)
            {
                var to = _interfaces[flow.MigrationInterface];
                flow.Interface = to.Index;
                flow.LocalAddress = to.Address;
                flow.Stream?.UpdateMss(StreamOptionsFor(to).Mss);
            }

            flow.MigrationInterface = -1;
            Counters.MigrationCompleted(now - flow.MigrationStartedAt);
            if (flow.Migration == MigrationState.RsynSentReceived)
            {
                flow.Migration = MigrationState.RsynReceived;
                flow.MigrationPeerAddress = source;
            }
            else
            {
                flow.Migration = MigrationState.None;
                flow.Stream?.Resume(now);
                Emit(new EngineEvent(EngineEventKind.Migrated, flow.Handle, Interface: flow.Interface));
            }

            SendPureAck(flow);
            MarkTransmit(flow);
            return;
        }

        // The peer moves.
        if (flow.Migration is MigrationState.None)
        {
            flow.Migration = MigrationState.RsynReceived;
        }
        else if (flow.Migration == MigrationState.RsynSent)
        {
            flow.Migration = MigrationState.RsynSentReceived;
        }

        flow.RcvNxt = c.Verno + 1;
        flow.MigrationPeerAddress = source;
        flow.Stream?.Freeze();
        var flags = SalControlFlags.Rsyn | SalControlFlags.Ack;
        QueueControl(flow, flags, flow.SndNxt, now);
        SendControlOnly(flow, flow.ControlFlags, flow.ControlVerno);
        Schedule(flow);
    }

    /// <summary>The final ACK of the peer's migration: adopt its new address and resume.</summary>
    private void CompletePeerMigration(Flow flow, TimeSpan now)
    {
        flow.PeerAddress = flow.MigrationPeerAddress;
        flow.ControlPending = false; // the RSYN|ACK is acknowledged
        if (flow.Migration == MigrationState.RsynSentReceived)
        {
            flow.Migration = MigrationState.RsynSent;
            return;
        }

        flow.Migration = MigrationState.None;
        flow.Stream?.Resume(now);
        MarkTransmit(flow);
        Emit(new EngineEvent(EngineEventKind.Migrated, flow.Handle, Interface: flow.Interface));
    }
}
