using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    // The DELAY queue. Every packet is in three indexes: by id (verdicts), by expiry (the lifetime is one constant, so
    // arrival order is expiry order) and by (serviceID, id) (a rule change under a prefix finds the packets it may
    // release with one range query: O(log n + matching)).
    private readonly Dictionary<long, DelayedPacket> _delayed = [];
    private readonly LinkedList<DelayedPacket> _delayedByExpiry = new();
    private readonly SortedSet<DelayedPacket> _delayedByService = new(DelayedPacket.ServiceOrder);
    private readonly List<ServicePrefix> _changedPrefixes = [];
    private readonly List<ServicePrefix> _changedScratch = [];
    private readonly List<DelayedPacket> _releaseScratch = [];
    private bool _recheckAllDelayed;
    private long _nextDelayId = 1;

    /// <summary>Number of packets held by DELAY rules.</summary>
    public int DelayedCount => _delayed.Count;

    /// <summary>
    /// Sends a locally generated first packet (SYN or unconnected datagram) according to the service table:
    /// the advisory address if the flow has one, else the top priority set of the longest matching prefix — one
    /// target chosen by weight, or every target when the set is flagged multicast. A packet larger than the chosen
    /// interface's MTU is not sent (<see cref="ServalError.InvalidArgument"/>): the link would carry it, but no
    /// receiver takes a packet above its MTU, so it would be lost without a word. Through a FORWARD rule the packet
    /// must also leave room for the SOURCE extension of <see cref="EngineOptions.ReservedRouterHops"/> routers.
    /// </summary>
    private ServalError SendFirst(in SalPacketRepr repr, ReadOnlySpan<byte> payload, ServiceId service, Flow? flow, DatagramSocket? socket, TimeSpan now)
    {
        if (flow is { AdvisoryAddress.IsNone: false })
        {
            foreach (var i in _interfaces)
            {
                if (i.IsUp && !i.IsLoopback && i.Address.Family == flow.AdvisoryAddress.Family)
                {
                    if (repr.GetLength(payload.Length) > i.Mtu)
                    {
                        return ServalError.InvalidArgument;
                    }

                    flow.UsePath(i.Index, i.Address);
                    var advisory = flow.AdvisoryAddress.Port == 0 ? flow.AdvisoryAddress.WithPort(i.Address.Port) : flow.AdvisoryAddress;
                    Send(i.Index, i.Address, advisory, repr, payload);
                    return ServalError.None;
                }
            }

            return ServalError.NoRoute;
        }

        var entry = Services.Lookup(service);
        if (entry is null)
        {
            Counters.NoRoutePacket();
            return ServalError.NoRoute;
        }

        var sent = false;
        var tooLarge = false;
        if ((entry.TopSet.Flags & ServiceFlags.Multicast) != 0)
        {
            foreach (var rule in entry.TopSet.Rules)
            {
                sent |= SendFirstTo(rule, repr, payload, service, flow, socket, now, ref tooLarge);
            }
        }
        else if (Services.TrySelect(entry, _random, out var rule))
        {
            var rules = entry.TopSet.Rules;
            if (flow is { Control.Retransmits: > 0 } && rules.Length > 1 && rule.Target.Type == ServiceTargetType.Forward && rule.Target.Address == flow.FirstHop)
            {
                // A SYN retransmission: the first hop it went through did not answer (a service router may have died);
                // this one goes through the next rule of the same priority instead (docs/router-fleet.md, "Hosts").
                rule = rules[(rules.IndexOf(rule) + 1) % rules.Length];
            }

            sent = SendFirstTo(rule, repr, payload, service, flow, socket, now, ref tooLarge);
            if (sent && flow is not null && rule.Target.Type == ServiceTargetType.Forward)
            {
                flow.UseFirstHop(rule.Target.Address);
            }
        }

        if (sent)
        {
            return ServalError.None;
        }

        if (tooLarge)
        {
            return ServalError.InvalidArgument;
        }

        Counters.NoRoutePacket();
        return ServalError.NoRoute;
    }

    /// <summary>
    /// The room a first packet sent through a FORWARD rule keeps for the SOURCE extension the routers on its way add:
    /// [client, router] plus one address per further reserved hop (docs/engine.md, "Forwarding and the MTU").
    /// </summary>
    private int ForwardingHeadroom(LinkAddress local) =>
        _options.ReservedRouterHops == 0 ? 0 : 4 + ((_options.ReservedRouterHops + 1) * (local.IsIPv6 ? 16 : 4));

    private bool SendFirstTo(ServiceRule rule, in SalPacketRepr repr, ReadOnlySpan<byte> payload, ServiceId service, Flow? flow, DatagramSocket? socket, TimeSpan now, ref bool tooLarge)
    {
        var length = repr.GetLength(payload.Length);
        switch (rule.Target.Type)
        {
            case ServiceTargetType.Forward:
                if (!TryGetUpInterface(rule.Target.Interface, out var iface))
                {
                    Services.RecordDropped(rule, length);
                    return false;
                }

                if (length + ForwardingHeadroom(iface.Address) > iface.Mtu)
                {
                    tooLarge = true;
                    return false;
                }

                if (flow is not null)
                {
                    flow.UsePath(iface.Index, iface.Address);
                }

                Send(iface.Index, iface.Address, rule.Target.Address, repr, payload);
                Services.RecordResolved(rule, length, now);
                return true;
            case ServiceTargetType.Demux:
                var lo = _interfaces[0];
                if (flow is not null)
                {
                    flow.UsePath(0, lo.Address);
                }

                Send(0, lo.Address, lo.Address, repr, payload);
                Services.RecordResolved(rule, length, now);
                return true;
            case ServiceTargetType.Delay:
                if (_delayed.Count >= _options.DelayQueueCapacity)
                {
                    Counters.DelayOverflowPacket();
                    Services.RecordDropped(rule, length);
                    return false;
                }

                var d = new DelayedPacket
                {
                    Id = _nextDelayId++,
                    ExpiresAt = now + _options.DelayQueueLifetime,
                    Service = service,
                    Flow = flow,
                    DatagramSocket = socket?.Handle ?? default,
                    Payload = socket is null ? null : payload.ToArray(),
                };
                if (flow is not null)
                {
                    flow.DelayedPacketId = d.Id;
                }

                EnqueueDelayed(d, rule, length, now);
                return true;
            default:
                Services.RecordDropped(rule, length);
                return false;
        }
    }

    private void EnqueueDelayed(DelayedPacket d, ServiceRule rule, int length, TimeSpan now)
    {
        _delayed.Add(d.Id, d);
        d.ExpiryNode = _delayedByExpiry.AddLast(d);
        _delayedByService.Add(d);
        Counters.DelayedPacket();
        Services.RecordResolved(rule, length, now);
        Emit(new EngineEvent(EngineEventKind.PacketDelayed, Prefix: ServicePrefix.Exact(d.Service), DelayedPacketId: d.Id));
    }

    /// <summary>
    /// Releases a delayed packet: it is resolved again (normally against the rule the resolver just installed).
    /// False when the id is unknown or already expired.
    /// </summary>
    public bool ReleaseDelayed(long id, TimeSpan now)
    {
        _now = now;
        var d = TakeDelayed(id);
        if (d is null)
        {
            return false;
        }

        Counters.DelayReleasedPacket();
        if (d.Flow is { } flow)
        {
            flow.DelayedPacketId = 0;
            if (flow.State == SalState.Request)
            {
                // The SYN leaves now for the first time: its retransmission timer, backoff and RTT sample start here.
                flow.Control.Restart(now);
                if (SendSyn(flow, now) == ServalError.NoRoute && flow.DelayedPacketId == 0)
                {
                    Fail(flow, ServalError.NoRoute, now);
                }
                else
                {
                    Schedule(flow);
                }
            }
        }
        else if (d.Payload is { } payload && _sockets.TryGetValue(d.DatagramSocket.Value, out var s) && s is DatagramSocket ds)
        {
            SendDatagram(ds, d.Service, payload, now);
        }
        else if (d.Packet is { } packet && TryGetUpInterface(d.Interface, out var iface)
            && SalPacketRepr.TryParse(packet, out var p, out var off, out var len, out _))
        {
            ResolveIncoming(iface, d.Source, d.Destination, d.HopLimit, p, packet, packet.AsSpan(off, len), false, now);
        }

        return true;
    }

    /// <summary>Drops a delayed packet; a connection waiting on it fails with <see cref="ServalError.NoRoute"/>.</summary>
    public bool DropDelayed(long id, TimeSpan now)
    {
        _now = now;
        var d = TakeDelayed(id);
        if (d is null)
        {
            return false;
        }

        if (d.Flow is { State: SalState.Request } flow)
        {
            flow.DelayedPacketId = 0;
            Fail(flow, ServalError.NoRoute, now);
        }

        return true;
    }

    private DelayedPacket? TakeDelayed(long id)
    {
        if (!_delayed.Remove(id, out var d))
        {
            return null;
        }

        _delayedByExpiry.Remove(d.ExpiryNode!);
        d.ExpiryNode = null;
        _delayedByService.Remove(d);
        return d;
    }

    private void RemoveDelayed(long id) => TakeDelayed(id);

    private void ExpireDelayed(TimeSpan now)
    {
        while (_delayedByExpiry.First is { } first && first.Value.ExpiresAt <= now)
        {
            var d = TakeDelayed(first.Value.Id)!;
            Counters.DelayExpiredPacket();
            if (d.Flow is { } flow)
            {
                flow.DelayedPacketId = 0; // its SYN retransmission will resolve again
            }
        }
    }

    /// <summary>The service table changed the entry of <paramref name="prefix"/> (called during the update).</summary>
    private void OnPrefixChanged(ServicePrefix prefix)
    {
        OnRelayPrefixChanged(prefix);
        if (_delayed.Count == 0 || _recheckAllDelayed)
        {
            return;
        }

        if (prefix.Length == 0 || _changedPrefixes.Count >= _delayed.Count + 16)
        {
            // Every held packet may be affected, or a burst of changes outnumbers them: look at each held packet once.
            _recheckAllDelayed = true;
            _changedPrefixes.Clear();
            return;
        }

        _changedPrefixes.Add(prefix);
    }

    /// <summary>
    /// Sends on the held packets that a rule change since the last call lets through: a packet whose serviceID lies
    /// under a changed prefix is released (resolved again, at once) when the top priority set of its longest match
    /// holds no DELAY rule any more — a FORWARD or DEMUX rule appeared (from a resolver, a router registration, a
    /// control request, the API), or the DELAY rule went. Released in arrival order; O(log held + matching) per
    /// changed prefix.
    /// </summary>
    private void ReleaseResolvable(TimeSpan now)
    {
        if (_changedPrefixes.Count == 0 && !_recheckAllDelayed)
        {
            return;
        }

        var candidates = _releaseScratch;
        candidates.Clear();
        if (_recheckAllDelayed)
        {
            candidates.AddRange(_delayedByExpiry);
        }
        else
        {
            // Releasing may change the table again (a datagram socket's first send adds its DEMUX rule): those changes
            // are handled in the next round.
            _changedScratch.AddRange(_changedPrefixes);
            foreach (var prefix in _changedScratch)
            {
                var low = new DelayedPacket { Service = prefix.Id, Id = long.MinValue };
                var high = new DelayedPacket { Service = prefix.Apply(AllOnes), Id = long.MaxValue };
                candidates.AddRange(_delayedByService.GetViewBetween(low, high));
            }

            _changedScratch.Clear();
        }

        _changedPrefixes.Clear();
        _recheckAllDelayed = false;
        if (candidates.Count > 1)
        {
            candidates.Sort(static (a, b) => a.Id.CompareTo(b.Id));
        }

        long previous = 0;
        foreach (var d in candidates)
        {
            if (d.Id == previous || !_delayed.ContainsKey(d.Id))
            {
                continue; // listed under two changed prefixes, or gone with a packet released before it
            }

            previous = d.Id;
            if (Services.Lookup(d.Service) is { } entry && HoldsDelay(entry.TopSet))
            {
                continue;
            }

            ReleaseDelayed(d.Id, now);
        }

        candidates.Clear();
    }

    private static bool HoldsDelay(ServicePrioritySet set)
    {
        foreach (var rule in set.Rules)
        {
            if (rule.Target.Type == ServiceTargetType.Delay)
            {
                return true;
            }
        }

        return false;
    }

    private static readonly ServiceId AllOnes = new(ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue);

    // ----------------------------------------------------------------------------------------------------------
    // Service-router resolution of received first packets (docs/protocol.md §8)

    private void ResolveIncoming(EngineInterface iface, LinkAddress source, LinkAddress destination, int hopLimit, in SalPacketRepr p, ReadOnlySpan<byte> packet, ReadOnlySpan<byte> payload, bool broadcast, TimeSpan now)
    {
        var service = p.DestinationService!.Value;
        var entry = Services.Lookup(service);
        if (entry is null)
        {
            Counters.NoRoutePacket();
            SendNegativeAnswer(iface, source, p, serviceNotFound: true, broadcast, now);
            return;
        }

        if ((entry.TopSet.Flags & ServiceFlags.Multicast) != 0)
        {
            foreach (var rule in entry.TopSet.Rules)
            {
                ResolveIncomingTo(rule, iface, source, destination, hopLimit, p, packet, payload, broadcast, now);
            }
        }
        else if (Services.TrySelect(entry, _random, out var rule))
        {
            ResolveIncomingTo(rule, iface, source, destination, hopLimit, p, packet, payload, broadcast, now, inPlace: true);
        }
    }

    private void ResolveIncomingTo(ServiceRule rule, EngineInterface iface, LinkAddress source, LinkAddress destination, int hopLimit, in SalPacketRepr p, ReadOnlySpan<byte> packet, ReadOnlySpan<byte> payload, bool broadcast, TimeSpan now, bool inPlace = false)
    {
        switch (rule.Target.Type)
        {
            case ServiceTargetType.Demux:
                if (IsRelayedRsyn(p))
                {
                    // A relayed RSYN is for a flow on another host; this router has none with its flowID.
                    Services.RecordDropped(rule, packet.Length);
                    Counters.UnknownFlowPacket();
                    return;
                }

                var socket = rule.Target.Socket;
                if (rule.Target.Protocol != p.Protocol)
                {
                    if (!Services.TryLookupDemux(p.DestinationService!.Value, p.Protocol, out _, out var other))
                    {
                        Counters.NoRoutePacket();
                        return;
                    }

                    socket = other.Target.Socket;
                }

                Services.RecordResolved(rule, packet.Length, now);
                DeliverToSocket(socket, iface, source, destination, p, payload, now);
                return;
            case ServiceTargetType.Forward:
                if (_options.Mode == EngineMode.ServiceRouter && IsRelayedRsyn(p))
                {
                    // Held as received: the packet must stay intact, so it is not rewritten in place.
                    Forward(rule, iface, source, hopLimit, p, payload, packet.Length, broadcast, now, inPlace: false);
                    HoldRelay(p, packet, iface, source, destination, hopLimit, rule.Target.Address, now);
                    return;
                }

                Forward(rule, iface, source, hopLimit, p, payload, packet.Length, broadcast, now, inPlace);
                return;
            case ServiceTargetType.Delay:
                if (_delayed.Count >= _options.DelayQueueCapacity)
                {
                    Counters.DelayOverflowPacket();
                    Services.RecordDropped(rule, packet.Length);
                    return;
                }

                EnqueueDelayed(
                    new DelayedPacket
                    {
                        Id = _nextDelayId++,
                        ExpiresAt = now + _options.DelayQueueLifetime,
                        Service = p.DestinationService!.Value,
                        Packet = packet.ToArray(),
                        Interface = iface.Index,
                        Source = source,
                        Destination = destination,
                        HopLimit = hopLimit,
                    },
                    rule,
                    packet.Length,
                    now);
                return;
            default:
                Services.RecordDropped(rule, packet.Length);
                Counters.NoRoutePacket();
                return;
        }
    }

    /// <summary>
    /// Forwards a first packet: never a link broadcast; loop if our address is already in SOURCE, the route is full or
    /// of the other family; append our address (or create SOURCE [client, us]); rewrite only the destination; the IP
    /// source stays the client's (SOURCE[0]); the IP TTL / hop limit goes down by one, and a packet whose hop limit
    /// would reach 0 is dropped (<see cref="EngineCounters.HopLimitExceeded"/>; an unknown hop limit leaves the choice
    /// to the outgoing link). With <paramref name="inPlace"/> and a writable receive buffer, the packet is rewritten
    /// there (<see cref="SalForwarding"/>, docs/engine.md "Forwarding in place"); otherwise, or when its headers are
    /// not in the form this stack emits, it is emitted again from its parsed value (checksums computed afresh).
    /// </summary>
    private void Forward(ServiceRule rule, EngineInterface iface, LinkAddress source, int hopLimit, in SalPacketRepr p, ReadOnlySpan<byte> payload, int length, bool broadcast, TimeSpan now, bool inPlace)
    {
        if (broadcast || !TryGetUpInterface(rule.Target.Interface, out var outIface))
        {
            Services.RecordDropped(rule, length);
            Counters.NoRoutePacket();
            return;
        }

        if (IPHopLimit.IsKnown(hopLimit) && hopLimit <= 1)
        {
            Services.RecordDropped(rule, length);
            Counters.HopLimitExceededPacket();
            return;
        }

        var v6 = iface.Address.IsIPv6;
        var addressLength = v6 ? 16 : 4;
        var existing = p.SourceRoute;
        if (existing is not null
            ? existing.ContainsAddress(iface.Address) || existing.IsIPv6 != v6
                || existing.Count >= (v6 ? SalSourceRoute.MaxV6Addresses : SalSourceRoute.MaxV4Addresses)
            : source.Family != iface.Address.Family)
        {
            Services.RecordDropped(rule, length);
            Counters.ForwardLoop();
            return;
        }

        if (rule.Target.Address.SameAddress(iface.Address) && rule.Target.Address.Port == iface.Address.Port)
        {
            Services.RecordDropped(rule, length);
            Counters.ForwardLoop();
            return;
        }

        var growth = existing is null ? 4 + (2 * addressLength) : addressLength;
        if (p.GetLength(payload.Length) + growth > outIface.Mtu)
        {
            // The receiver would drop it (no link takes a packet above its MTU): refuse here, where it can be counted.
            Services.RecordDropped(rule, length);
            Counters.ForwardTooBigPacket();
            return;
        }

        var client = existing?.First ?? source.WithPort(0);
        var forwardedHopLimit = IPHopLimit.IsKnown(hopLimit) ? hopLimit - 1 : IPHopLimit.Unknown;
        if (!(inPlace && TryForwardInPlace(outIface.Index, client, iface.Address, rule.Target.Address, p, payload.Length, forwardedHopLimit)))
        {
            var route = existing is not null && existing.TryAppend(iface.Address, out var appended) ? appended : new SalSourceRoute([source, iface.Address]);
            Send(outIface.Index, client, rule.Target.Address, p with { SourceRoute = route }, payload, forwardedHopLimit);
        }

        Services.RecordResolved(rule, length, now);
        Counters.ForwardedPacket();
    }

    /// <summary>
    /// Forwards the packet being received in its own buffer (<see cref="SalForwarding.RewriteInPlace"/>) and sends it
    /// through the receive call's sink, or queues it when there is none. False, with nothing sent, when the receive
    /// buffer is read-only, its headroom too small, or the headers are not in the form this stack emits (a re-emit
    /// would normalise them, so the caller emits the packet again instead, to send the same bytes either way).
    /// </summary>
    private bool TryForwardInPlace(int outIface, LinkAddress client, LinkAddress router, LinkAddress target, in SalPacketRepr p, int payloadLength, int hopLimit)
    {
        if (_rxBuffer is not { } buffer)
        {
            return false;
        }

        if (!SalForwarding.HasCanonicalHeaders(buffer.AsSpan(_rxOffset, _rxEnd), p, payloadLength, _scratch))
        {
            Counters.ForwardReemittedPacket();
            return false;
        }

        var start = SalForwarding.RewriteInPlace(buffer, _rxOffset, _rxEnd, client, router, _rxPseudo, TransportPseudoHeader.ForLink(client, target), out var n);
        if (start < 0)
        {
            return false;
        }

        // The buffer now holds the forwarded packet: it must not be read as the received one again.
        _rxBuffer = null;
        var bytes = buffer.AsSpan(start, n);
        if (_rxSink is { } sink && outIface != 0)
        {
            Counters.Sent(n);
            sink.Send(outIface, client, target, bytes, hopLimit);
        }
        else
        {
            Transmit(outIface, client, target, bytes, hopLimit);
        }

        Counters.ForwardedInPlacePacket();
        return true;
    }
}
