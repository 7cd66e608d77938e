using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    /// <summary>Most relayed RSYNs a service router keeps for forwarding again; the oldest goes beyond.</summary>
    private const int MaxHeldRelays = 256;

    /// <summary>Relayed RSYNs this router forwarded, oldest first (docs/engine.md, "Both ends move").</summary>
    private readonly LinkedList<HeldRelay> _heldRelays = new();
    private bool _recheckRelays;

    /// <summary>How many relayed RSYNs a service router keeps for forwarding again when their service's registration moves.</summary>
    public int HeldRelayCount => _heldRelays.Count;

    /// <summary>
    /// A service router forwarded a relayed RSYN to <paramref name="sentTo"/>: keep it (the packet as received) for
    /// <see cref="EngineOptions.RelayHold"/>, so that it goes again, at once, to the service's new registration if
    /// that registration moves meanwhile. When both ends of a connection move at the same moment, the mover's RSYN
    /// often reaches the router before the peer's registration from its new address does; without this, it would wait
    /// for the mover's next retransmission (its backoff). A newer copy for the same flow (both flowIDs) replaces the
    /// one kept, also when it comes from another address (the mover moved again).
    /// </summary>
    private void HoldRelay(in SalPacketRepr p, ReadOnlySpan<byte> packet, EngineInterface iface, LinkAddress source, LinkAddress destination, int hopLimit, LinkAddress sentTo, TimeSpan now)
    {
        if (_options.RelayHold <= TimeSpan.Zero)
        {
            return;
        }

        ExpireHeldRelays(now);
        for (var node = _heldRelays.First; node is not null; node = node.Next)
        {
            if (node.Value.SourceFlow == p.SourceFlow && node.Value.DestinationFlow == p.DestinationFlow)
            {
                _heldRelays.Remove(node);
                break;
            }
        }

        if (_heldRelays.Count >= MaxHeldRelays)
        {
            _heldRelays.RemoveFirst();
        }

        _heldRelays.AddLast(new HeldRelay(p.SourceFlow, p.DestinationFlow, p.DestinationService!.Value, packet.ToArray(), iface.Index, source, destination, hopLimit, sentTo, now + _options.RelayHold));
    }

    /// <summary>The service table changed: the held relayed RSYNs are checked at the next poll.</summary>
    private void OnRelayPrefixChanged(ServicePrefix prefix)
    {
        if (_heldRelays.Count == 0 || _recheckRelays)
        {
            return;
        }

        foreach (var held in _heldRelays)
        {
            if (prefix.Contains(held.Service))
            {
                _recheckRelays = true;
                return;
            }
        }
    }

    /// <summary>
    /// Forwards again every held relayed RSYN whose service's rules no longer forward to the address it went to — the
    /// registration moved (a FORWARD rule to a new address replaced the old one) — resolving it afresh, as it was
    /// received; expired ones are dropped.
    /// </summary>
    private void ResendHeldRelays(TimeSpan now)
    {
        ExpireHeldRelays(now);
        if (!_recheckRelays)
        {
            return;
        }

        _recheckRelays = false;
        List<HeldRelay>? again = null;
        foreach (var held in _heldRelays)
        {
            if (Services.Lookup(held.Service) is not { } entry)
            {
                continue;
            }

            var forwards = false;
            var stillThere = false;
            foreach (var rule in entry.TopSet.Rules)
            {
                if (rule.Target.Type == ServiceTargetType.Forward)
                {
                    forwards = true;
                    stillThere |= rule.Target.Address == held.SentTo;
                }
            }

            if (forwards && !stillThere)
            {
                (again ??= []).Add(held);
            }
        }

        if (again is null)
        {
            return;
        }

        foreach (var held in again)
        {
            if (TryGetUpInterface(held.Interface, out var iface)
                && SalPacketRepr.TryParse(held.Packet, out var p, out var off, out var len, out _))
            {
                Counters.RelayResent();
                ResolveIncoming(iface, held.Source, held.Destination, held.HopLimit, p, held.Packet, held.Packet.AsSpan(off, len), false, now);
            }
        }
    }

    private void ExpireHeldRelays(TimeSpan now)
    {
        while (_heldRelays.First is { } first && first.Value.ExpiresAt <= now)
        {
            _heldRelays.RemoveFirst();
        }
    }

    /// <summary>A relayed RSYN kept by a service router: the packet as received, where it came from and where it went.</summary>
    private sealed record HeldRelay(FlowId SourceFlow, FlowId DestinationFlow, ServiceId Service, byte[] Packet, int Interface, LinkAddress Source, LinkAddress Destination, int HopLimit, LinkAddress SentTo, TimeSpan ExpiresAt);
}
