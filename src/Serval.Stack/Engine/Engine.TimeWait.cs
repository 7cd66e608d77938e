using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// Compact TIME-WAIT (docs/engine.md, "TIME-WAIT"): once the application has released a flow in TIME-WAIT, the flow and
/// its transport buffers are replaced by a small record holding only what TIME-WAIT does — acknowledge a retransmitted
/// FIN (SAL and transport), honour a verified RST, keep the flowID out of reuse — until it expires. The number of such
/// records is capped (<see cref="EngineOptions.MaxTimeWaitFlows"/>); at the cap the oldest is recycled first.
/// </summary>
public sealed partial class Engine
{
    private readonly Dictionary<uint, TimeWaitEntry> _timeWait = [];
    private readonly Queue<(uint Flow, uint Generation, TimeSpan ExpiresAt)> _timeWaitOrder = new();
    private uint _timeWaitGeneration;

    /// <summary>Flows in TIME-WAIT kept as compact records (their applications released them).</summary>
    public int CompactTimeWaitCount => _timeWait.Count;

    /// <summary>80 bytes (fields ordered to avoid padding); the expiry lives in the order queue, matched by generation.</summary>
    private struct TimeWaitEntry
    {
        public LinkAddress PeerAddress;
        public ulong LocalNonce;
        public ulong PeerNonce;
        public TimeWaitTcp Tcp;
        public uint PeerFlow;
        public uint SndNxt;
        public uint RcvNxt;
        public uint Generation;
        public ushort Interface;
        public bool HasStream;
        public byte Protocol;
    }

    /// <summary>Replaces a released TIME-WAIT flow by its compact record.</summary>
    private void CompactTimeWait(Flow flow)
    {
        var entry = new TimeWaitEntry
        {
            PeerFlow = flow.PeerFlow.Value,
            LocalNonce = flow.LocalNonce.Value,
            PeerNonce = flow.PeerNonce.Value,
            SndNxt = flow.Control.SndNxt,
            RcvNxt = flow.Control.RcvNxt,
            Tcp = flow.Stream?.TimeWaitState ?? default,
            HasStream = flow.Stream is not null,
            PeerAddress = flow.PeerAddress,
            Generation = ++_timeWaitGeneration,
            Interface = (ushort)flow.Interface,
            Protocol = (byte)flow.Protocol,
        };
        flow.Released = true;
        RemoveFlow(flow);
        flow.Stream = null;
        var id = flow.LocalFlow.Value;
        _timeWait[id] = entry;
        _timeWaitOrder.Enqueue((id, entry.Generation, flow.StateTimerAt ?? _now + _options.TimeWait));
        while (_timeWait.Count > _options.MaxTimeWaitFlows && _timeWaitOrder.TryDequeue(out var oldest))
        {
            if (_timeWait.TryGetValue(oldest.Flow, out var e) && e.Generation == oldest.Generation)
            {
                _timeWait.Remove(oldest.Flow);
                Counters.TimeWaitRecycledFlow();
            }
        }
    }

    /// <summary>Snapshots of the compact TIME-WAIT records (no socket, no transport statistics: both are gone).</summary>
    private IEnumerable<FlowInfo> CompactTimeWaitInfo()
    {
        foreach (var (id, e) in _timeWait)
        {
            yield return new FlowInfo
            {
                LocalFlow = new FlowId(id),
                PeerFlow = new FlowId(e.PeerFlow),
                Protocol = (TransportProtocol)e.Protocol,
                State = SalState.TimeWait,
                Interface = e.Interface,
                LocalAddress = (uint)e.Interface < (uint)_interfaces.Count ? _interfaces[e.Interface].Address : default,
                PeerAddress = e.PeerAddress,
            };
        }
    }

    /// <summary>Ends compact TIME-WAIT records whose time is up.</summary>
    private void ExpireTimeWait(TimeSpan now)
    {
        while (_timeWaitOrder.TryPeek(out var head) && head.ExpiresAt <= now)
        {
            _timeWaitOrder.Dequeue();
            if (_timeWait.TryGetValue(head.Flow, out var e) && e.Generation == head.Generation)
            {
                _timeWait.Remove(head.Flow);
            }
        }

        if (_timeWait.Count == 0 && _timeWaitOrder.Count > 0)
        {
            _timeWaitOrder.Clear();
        }
    }

    /// <summary>The earliest compact TIME-WAIT expiry, if any.</summary>
    private TimeSpan? NextTimeWaitExpiry()
    {
        while (_timeWaitOrder.TryPeek(out var head))
        {
            if (_timeWait.TryGetValue(head.Flow, out var e) && e.Generation == head.Generation)
            {
                return head.ExpiresAt;
            }

            _timeWaitOrder.Dequeue(); // recycled or reset earlier
        }

        return null;
    }

    /// <summary>A packet for a compact TIME-WAIT flow. Returns false when <paramref name="localFlow"/> is not one.</summary>
    private bool OnTimeWaitPacket(uint localFlow, EngineInterface iface, LinkAddress source, in SalPacketRepr p, TimeSpan now)
    {
        if (!_timeWait.TryGetValue(localFlow, out var e))
        {
            return false;
        }

        if (p.Control is { } c)
        {
            if (c.Has(SalControlFlags.Rst))
            {
                if (c.Nonce.Value == e.LocalNonce || c.Nonce.Value == e.PeerNonce)
                {
                    _timeWait.Remove(localFlow);
                }
                else
                {
                    Counters.ResetIgnored();
                }

                return true;
            }

            if (c.Nonce.Value != e.PeerNonce)
            {
                Counters.BadNoncePacket();
                return true;
            }

            if (c.Has(SalControlFlags.Fin))
            {
                // The peer did not get our ACK of its FIN: acknowledge again.
                SendTimeWaitPacket(e, localFlow, iface, new SalControl(SalControlFlags.Ack, e.SndNxt, e.RcvNxt, new Nonce(e.LocalNonce)), default);
            }

            return true;
        }

        if (e.HasStream && p.Protocol == SalPacketRepr.ProtocolTcp && p.Tcp.Has(TcpFlags.Fin) && !p.Tcp.Has(TcpFlags.Rst))
        {
            SendTimeWaitPacket(e, localFlow, iface, null, StreamConnection.CreateTimeWaitAck(e.Tcp, now));
        }

        _ = source;
        return true;
    }

    private void SendTimeWaitPacket(in TimeWaitEntry e, uint localFlow, EngineInterface arrivedOn, SalControl? control, TcpRepr tcp)
    {
        var iface = TryGetUpInterface(e.Interface, out var i) ? i : arrivedOn;
        var repr = new SalPacketRepr
        {
            SourceFlow = new FlowId(localFlow),
            DestinationFlow = new FlowId(e.PeerFlow),
            Protocol = e.Protocol,
            Control = control,
            ControlOnly = control is not null,
            Tcp = tcp,
        };
        Send(iface.Index, iface.Address, e.PeerAddress, repr, []);
    }
}
