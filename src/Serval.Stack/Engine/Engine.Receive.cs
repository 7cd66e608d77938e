using Serval.Stack.Services;
using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    /// <summary>
    /// Hands the engine a packet (SAL header onward) that arrived on interface <paramref name="interfaceIndex"/> from
    /// <paramref name="source"/> to <paramref name="destination"/> (the link addresses, with UDP ports on UDP links),
    /// its IP TTL / hop limit unknown. Malformed packets are dropped and counted; responses are queued for
    /// <see cref="Poll"/>.
    /// </summary>
    public void Receive(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, TimeSpan now) =>
        Receive(interfaceIndex, source, destination, packet, IPHopLimit.Unknown, now);

    /// <summary>
    /// Hands the engine a packet (SAL header onward) that arrived on interface <paramref name="interfaceIndex"/> from
    /// <paramref name="source"/> to <paramref name="destination"/> (the link addresses, with UDP ports on UDP links)
    /// with the IP TTL / hop limit <paramref name="hopLimit"/> (<see cref="IPHopLimit.Unknown"/> when the link cannot
    /// tell). A service router forwards a first packet with the hop limit decremented, and drops it (counted as
    /// <see cref="EngineCounters.HopLimitExceeded"/>) when the hop limit would reach 0. Malformed packets are dropped
    /// and counted; responses are queued for <see cref="Poll"/>.
    /// </summary>
    public void Receive(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit, TimeSpan now)
    {
        _now = now;
        try
        {
            ReceiveCore(interfaceIndex, source, destination, packet, hopLimit, now);
        }
        catch (Exception e)
        {
            OnFault(_faultFlow, "receive", e, now);
        }
        finally
        {
            _faultFlow = null;
        }
    }

    /// <summary>
    /// Hands the engine a packet that arrived on interface <paramref name="interfaceIndex"/>, as
    /// <see cref="Receive(int, LinkAddress, LinkAddress, ReadOnlySpan{byte}, int, TimeSpan)"/> does, in a buffer the engine
    /// may write to: the packet is <c>buffer[offset..(offset + length)]</c>, and the <paramref name="offset"/> bytes in
    /// front of it are headroom (<see cref="SalForwarding.MaxGrowth"/> is enough). A service router then forwards a
    /// first packet in place (docs/engine.md, "Forwarding in place"): the SOURCE extension is written into the
    /// headroom, the checksums are updated incrementally, nothing is allocated, and the packet goes out through
    /// <paramref name="sink"/> during this call — no copy, no queue — or, when <paramref name="sink"/> is null, is
    /// queued for <see cref="Poll"/> with one copy. The buffer's contents are undefined afterwards; the engine keeps no
    /// reference to it.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset or length lie outside the buffer.</exception>
    public void Receive(int interfaceIndex, LinkAddress source, LinkAddress destination, byte[] buffer, int offset, int length, int hopLimit, TimeSpan now, IPacketSink? sink)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset + length, buffer.Length, nameof(length));
        _now = now;
        _rxBuffer = buffer;
        _rxOffset = offset;
        _rxSink = sink;
        try
        {
            ReceiveCore(interfaceIndex, source, destination, buffer.AsSpan(offset, length), hopLimit, now);
        }
        catch (Exception e)
        {
            OnFault(_faultFlow, "receive", e, now);
        }
        finally
        {
            _faultFlow = null;
            _rxBuffer = null;
            _rxSink = null;
        }
    }

    private void ReceiveCore(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit, TimeSpan now)
    {
        Counters.Received(packet.Length);
        if (!TryGetUpInterface(interfaceIndex, out var iface))
        {
            Counters.MalformedPacket();
            return;
        }

        if (!SalPacketRepr.TryParse(packet, out var p, out var payloadOffset, out var payloadLength, out _))
        {
            Counters.MalformedPacket();
            return;
        }

        // The pseudo-header's source is the link source: the IP source the sender wrote (a service router keeps the
        // client's). Only a link that cannot carry that source (it delivers from the sending interface's own address,
        // as UDP encapsulation does) may show a forwarded first packet from the router, whose checksum then verifies
        // with SOURCE[0] (docs/engine.md, "checksums").
        _rxPseudo = TransportPseudoHeader.ForLink(source, destination);
        if (!SalPacketRepr.VerifyTransportChecksum(packet, _rxPseudo))
        {
            if (iface.RewritesSource && p.SourceRoute is { } route
                && SalPacketRepr.VerifyTransportChecksum(packet, TransportPseudoHeader.ForLink(route.First, destination)))
            {
                _rxPseudo = TransportPseudoHeader.ForLink(route.First, destination);
            }
            else
            {
                Counters.BadTransportChecksumPacket();
                return;
            }
        }

        _rxEnd = payloadOffset + payloadLength;

        var payload = packet.Slice(payloadOffset, payloadLength);
        var broadcast = !iface.Broadcast.IsNone && destination.SameAddress(iface.Broadcast);
        if (broadcast && IsOwnAddress(source))
        {
            // Our own broadcast, looped back by the kernel to another of our links: nothing to answer.
            Counters.OwnBroadcastPacket();
            return;
        }

        var synNoAck = p.Control is { } c0 && c0.Has(SalControlFlags.Syn) && !c0.Has(SalControlFlags.Ack);
        if (!synNoAck && !p.DestinationFlow.IsNone)
        {
            if (_flows.TryGetValue(p.DestinationFlow.Value, out var flow))
            {
                _faultFlow = flow;
                if (flow.Security is { Established: true } security)
                {
                    // An authenticated flow: a packet whose AUTH does not verify never reaches the SAL or the
                    // transport (docs/security.md).
                    var opened = security.Open(p, payload, _sealScratch, _plainScratch, out var decrypted);
                    if (opened != FlowSecurity.OpenResult.Ok)
                    {
                        if (opened == FlowSecurity.OpenResult.Replayed)
                        {
                            Counters.ReplayedPacket();
                        }
                        else
                        {
                            Counters.UnauthenticatedPacket();
                        }

                        return;
                    }

                    if (decrypted)
                    {
                        payload = _plainScratch.AsSpan(0, payload.Length);
                    }
                }

                OnFlowPacket(flow, iface, source, destination, p, payload, packet.Length, now);
                return;
            }

            if (OnTimeWaitPacket(p.DestinationFlow.Value, iface, source, p, now) || TryCookieAck(iface, source, p, payload, now))
            {
                return;
            }

            if (_options.Mode == EngineMode.ServiceRouter && IsRelayedRsyn(p))
            {
                // An RSYN addressed to a service (docs/engine.md, "Both ends move"): forwarded like a SYN.
                ResolveIncoming(iface, source, destination, hopLimit, p, packet, payload, broadcast, now);
                return;
            }

            Counters.UnknownFlowPacket();
            if (p.Control is not { } rc || !rc.Has(SalControlFlags.Rst))
            {
                SendResetFor(iface, source, destination, p, broadcast);
            }

            return;
        }

        // A first packet: SYN, or an unconnected datagram.
        if (p.DestinationService is not { } service || p.Control is { } rst && rst.Has(SalControlFlags.Rst))
        {
            Counters.MalformedPacket();
            return;
        }

        if (_options.Mode == EngineMode.ServiceRouter)
        {
            ResolveIncoming(iface, source, destination, hopLimit, p, packet, payload, broadcast, now);
            return;
        }

        if (Services.TryLookupDemux(service, p.Protocol, out var entry, out var rule))
        {
            Services.RecordResolved(rule, packet.Length, now);
            DeliverToSocket(rule.Target.Socket, iface, source, destination, p, payload, now);
            return;
        }

        Services.RecordDropped(entry, packet.Length);
        Counters.NoRoutePacket();
        if (!synNoAck && p.Control is not null)
        {
            SendResetFor(iface, source, destination, p, broadcast);
        }
        else if (synNoAck)
        {
            // The SYN reached this host, which has no listener for the service: refused.
            SendNegativeAnswer(iface, source, p, serviceNotFound: false, broadcast, now);
        }
    }

    /// <summary>Whether <paramref name="address"/> (with its port) is one of this engine's interface addresses.</summary>
    private bool IsOwnAddress(LinkAddress address)
    {
        foreach (var i in _interfaces)
        {
            if (i.Address == address)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether <paramref name="address"/> is the broadcast address of one of this engine's interfaces.</summary>
    private bool IsBroadcastAddress(LinkAddress address)
    {
        foreach (var i in _interfaces)
        {
            if (!i.Broadcast.IsNone && i.Broadcast.SameAddress(address))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A first packet reached a local DEMUX rule.</summary>
    private void DeliverToSocket(long socket, EngineInterface iface, LinkAddress source, LinkAddress destination, in SalPacketRepr p, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        if (!_sockets.TryGetValue(socket, out var s))
        {
            Counters.NoRoutePacket();
            return;
        }

        if (p.Control is { } c && c.Has(SalControlFlags.Syn) && !c.Has(SalControlFlags.Ack))
        {
            if (s is ListenerSocket l && (byte)l.Protocol == p.Protocol)
            {
                OnSyn(l, iface, source, destination, p, c, now);
            }
            else
            {
                Counters.NoRoutePacket();
                SendNegativeAnswer(iface, source, p, serviceNotFound: false, destination.SameAddress(iface.Broadcast) && !iface.Broadcast.IsNone, now);
            }

            return;
        }

        if (p.Control is null && p.Protocol == SalPacketRepr.ProtocolUdp && p.SourceService is { } from && s is DatagramSocket d)
        {
            DeliverDatagram(d, payload, from, source);
            return;
        }

        if (p.Control is not null)
        {
            // Neither a SYN nor a datagram: nothing here can take it: RST (docs/protocol.md §6).
            Counters.UnknownFlowPacket();
            SendResetFor(iface, source, destination, p, false);
            return;
        }

        Counters.DatagramDropped();
    }

    private void DeliverDatagram(DatagramSocket d, ReadOnlySpan<byte> payload, ServiceId from, LinkAddress source)
    {
        if (payload.IsEmpty || d.Queue.Count >= _options.DatagramQueueCapacity)
        {
            Counters.DatagramDropped();
            return;
        }

        d.Queue.Enqueue(new ReceivedDatagram(payload.ToArray(), from, source));
        if (d.Queue.Count == 1)
        {
            Emit(new EngineEvent(EngineEventKind.Readable, d.Handle));
        }
    }

    // ----------------------------------------------------------------------------------------------------------
    // Server side of the handshake

    private void OnSyn(ListenerSocket l, EngineInterface iface, LinkAddress source, LinkAddress destination, in SalPacketRepr p, SalControl c, TimeSpan now)
    {
        if (l.Pending.TryGetValue((p.SourceFlow.Value, c.Nonce.Value), out var existing))
        {
            // Duplicate SYN: our SYN-ACK was lost or is late; answer again (unless the handshake already completed).
            _faultFlow = existing;
            if (existing.State == SalState.Respond && AwaitsHandshakeAck(existing))
            {
                Counters.ControlRetransmission();
                SendSynAck(existing, now);
            }

            return;
        }

        // A full accept queue does not drop the SYN (that would cost the client a whole initial RTO): the request waits
        // in the pending table, and its verified handshake ACK completes it as soon as the application accepts.
        if (l.Pending.Count >= _options.MaxPendingRequests)
        {
            // Full of requests that may all be junk: answer without state (SYN cookies), or drop when they are off.
            if (_options.SynCookies)
            {
                SendCookieSynAck(l, iface, source, p, c, now);
            }
            else
            {
                Counters.SynDroppedPacket();
            }

            return;
        }

        var flow = new Flow(NewHandle(), l.Protocol, NewFlowId(), NewNonce(), NewControl(_random.NextUInt32()))
        {
            State = SalState.Respond,
            Service = p.DestinationService!.Value,
            SynSource = p.SourceRoute,
            Listener = l,
        };
        flow.UsePeer(p.SourceFlow, c.Nonce);
        flow.UsePath(iface.Index, iface.Address);
        flow.UsePeerAddress(p.SourceRoute is { } r ? AdoptPort(r.First, source, iface) : source);
        flow.AwaitHandshakeAck(now + _options.PendingRequestLifetime, now + _options.InitialRto);
        flow.Control.OnPeerVerno(c.Verno);
        flow.Control.OnSynSent();
        if (p.KeyExchange is { IsAccept: false } offer)
        {
            flow.Security = AcceptKeyExchange(l, flow, p, c, offer);
        }

        if (flow.Protocol == TransportProtocol.Stream)
        {
            var stream = new StreamConnection(StreamOptionsFor(iface, flow.Security is not null), _random, now);
            if (!stream.OnSyn(p.Tcp, now))
            {
                Counters.MalformedPacket();
                return;
            }

            flow.Stream = stream;
        }

        _flows.Add(flow.LocalFlow.Value, flow);
        _sockets.Add(flow.Handle.Value, flow);
        l.Pending.Add((p.SourceFlow.Value, c.Nonce.Value), flow);
        _faultFlow = flow;
        SendSynAck(flow, now);
        Schedule(flow);
    }

    /// <summary>Stream options with the MSS of the path through <paramref name="iface"/>: MTU − SAL base header − TCP header.</summary>
    private StreamOptions StreamOptionsFor(EngineInterface iface, bool secured = false)
    {
        // A secured flow's packets carry the AUTH extension (docs/security.md): its segments are that much smaller.
        var mss = iface.Mtu - SalHeaderView.BaseLength - TcpHeaderView.MinLength - (secured ? SalPacketAuth.Length : 0);
        var options = StreamOptions;
        if (options.Mss == mss)
        {
            return options;
        }

        // One options object per segment size, shared by every connection (not a copy per connection).
        if (!ReferenceEquals(_streamOptionsBase, options))
        {
            _streamOptionsByMss.Clear();
            _streamOptionsBase = options;
        }

        if (!_streamOptionsByMss.TryGetValue(mss, out var sized))
        {
            sized = options with { Mss = mss };
            _streamOptionsByMss[mss] = sized;
        }

        return sized;
    }

    private readonly Dictionary<int, StreamOptions> _streamOptionsByMss = [];
    private StreamOptions? _streamOptionsBase;

    /// <summary>The interface a first packet to <paramref name="service"/> would most likely leave through.</summary>
    private EngineInterface LikelyInterface(ServiceId service, LinkAddress advisory)
    {
        if (advisory.IsNone && Services.Lookup(service) is { } entry)
        {
            foreach (var rule in entry.TopSet.Rules)
            {
                if (rule.Target.Type == ServiceTargetType.Forward && TryGetUpInterface(rule.Target.Interface, out var i))
                {
                    return i;
                }

                if (rule.Target.Type == ServiceTargetType.Demux)
                {
                    return _interfaces[0];
                }
            }
        }

        foreach (var i in _interfaces)
        {
            if (i.IsUp && !i.IsLoopback && (advisory.IsNone || i.Address.Family == advisory.Family))
            {
                return i;
            }
        }

        return _interfaces[0];
    }

    /// <summary>A SOURCE address names a host; on UDP links it is reached on the port the link uses.</summary>
    /// <summary>An RSYN (without ACK) that names the peer's service: a copy sent through the service table.</summary>
    private static bool IsRelayedRsyn(in SalPacketRepr p) =>
        p.DestinationService is not null && p.Control is { } c && c.Has(SalControlFlags.Rsyn) && !c.Has(SalControlFlags.Ack) && !c.Has(SalControlFlags.Syn);

    private static LinkAddress AdoptPort(LinkAddress routeAddress, LinkAddress linkSource, EngineInterface iface) =>
        routeAddress.SameAddress(linkSource) ? linkSource : routeAddress.WithPort(iface.Address.Port);

    /// <summary>The SOURCE extension a SYN-ACK carries: the SYN's, with our address appended (none when it had none).</summary>
    private static SalSourceRoute? SynAckRoute(SalSourceRoute? synSource, LinkAddress us) =>
        synSource is { } syn && syn.TryAppend(us, out var appended) ? appended : null;

    private void SendSynAck(Flow flow, TimeSpan now)
    {
        var route = SynAckRoute(flow.SynSource, flow.LocalAddress);
        var repr = new SalPacketRepr
        {
            SourceFlow = flow.LocalFlow,
            DestinationFlow = flow.PeerFlow,
            Protocol = (byte)flow.Protocol,
            Control = new SalControl(SalControlFlags.Syn | SalControlFlags.Ack, flow.Control.Iss, flow.Control.RcvNxt, flow.LocalNonce),
            SourceRoute = route,
            KeyExchange = flow.Security?.Acceptance,
            Tcp = flow.Stream?.CreateSynAck(now) ?? default,
            Udp = new UdpRepr { HasChecksum = false },
        };
        SendOnFlow(flow, repr, []);
    }

    // ----------------------------------------------------------------------------------------------------------
    // Packets of known flows

    private void OnFlowPacket(Flow flow, EngineInterface iface, LinkAddress source, LinkAddress destination, in SalPacketRepr p, ReadOnlySpan<byte> payload, int length, TimeSpan now)
    {
        FlowPacketProbe?.Invoke(flow.Handle);
        flow.PacketsReceived++;
        flow.BytesReceived += length;
        if (p.PathProbe is { } probe)
        {
            OnPathProbe(flow, source, p, probe, now);
            return;
        }

        // A packet of this flow from a new source (NAT rebinding): validate the path before replies follow it. Only
        // packets that can belong to the flow count: no control, or control with the peer's nonce (not RSYN, which
        // migrates explicitly, nor SYN/RST).
        if (flow.IsSynchronized && flow.State != SalState.TimeWait && flow.Migration == MigrationState.None && source != flow.PeerAddress
            && (p.Control is not { } mc || (mc.Nonce == flow.PeerNonce && (mc.Flags & (SalControlFlags.Rsyn | SalControlFlags.Syn | SalControlFlags.Rst)) == 0)))
        {
            ValidatePath(flow, source, now);
        }

        if (p.Control is { } c)
        {
            if (c.Has(SalControlFlags.Rst))
            {
                OnReset(flow, c, now);
                return;
            }

            switch (flow.State)
            {
                case SalState.Request:
                    if (c.Has(SalControlFlags.Syn | SalControlFlags.Ack))
                    {
                        OnSynAck(flow, iface, source, p, c, payload, now);
                    }

                    return;
                case SalState.Respond:
                    if (c.Nonce != flow.PeerNonce)
                    {
                        Counters.BadNoncePacket();
                        return;
                    }

                    if (c.Has(SalControlFlags.Ack) && !c.Has(SalControlFlags.Syn) && c.Verno == flow.Control.RcvNxt && c.Ackno == flow.Control.Iss + 1)
                    {
                        OnHandshakeAck(flow, p, payload, now);
                    }

                    return;
                case SalState.Closed or SalState.Init or SalState.Listen:
                    return;
            }

            if (c.Nonce != flow.PeerNonce)
            {
                if (c.Has(SalControlFlags.Syn | SalControlFlags.Ack) && p.SourceFlow != flow.PeerFlow)
                {
                    // Another host answered the same (broadcast) SYN: refuse it so it frees its request at once.
                    SendResetFor(iface, source, destination, p, false);
                    return;
                }

                Counters.BadNoncePacket();
                return;
            }

            flow.OnHeardFromPeer(); // a control packet with the peer's nonce
            if (c.Has(SalControlFlags.Syn | SalControlFlags.Ack))
            {
                // Our handshake ACK was lost: the server retransmitted its SYN-ACK.
                if (flow.Listener is null)
                {
                    SendConnAck(flow, now);
                }

                return;
            }

            var pureAck = c.IsPureAck;
            var rsynAck = (c.Flags & ~SalControlFlags.Reserved) == (SalControlFlags.Rsyn | SalControlFlags.Ack);

            // An RSYN relayed by a service router comes from the router; its sender is the SOURCE extension's first address.
            var rsynFrom = IsRelayedRsyn(p) && p.SourceRoute is { } relay ? AdoptPort(relay.First, source, iface) : source;
            if ((c.Flags & ~SalControlFlags.Reserved) == SalControlFlags.Rsyn && c.Verno == flow.Control.RcvNxt - 1)
            {
                // A duplicate of the RSYN we accepted: our RSYN|ACK was lost; answer it again where it came from.
                SendRsynAck(flow, rsynFrom);
                return;
            }

            if (!pureAck && !rsynAck && Serial.Lt(c.Verno, flow.Control.RcvNxt))
            {
                Counters.OldVernoPacket();
                SendPureAck(flow);
                return;
            }

            if (c.Has(SalControlFlags.Ack))
            {
                OnControlAck(flow, c, source, now);
                if (flow.State == SalState.Closed)
                {
                    return;
                }
            }

            if (c.Has(SalControlFlags.Rsyn))
            {
                OnRsyn(flow, iface, c.Has(SalControlFlags.Ack) ? source : rsynFrom, c, now);
            }

            if (c.Has(SalControlFlags.Fin))
            {
                OnFin(flow, c, now);
            }
        }

        if (!p.ControlOnly && flow.IsSynchronized)
        {
            OnTransport(flow, p, payload, now);
        }
    }

    private void OnSynAck(Flow flow, EngineInterface iface, LinkAddress source, in SalPacketRepr p, SalControl c, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        if (c.Ackno != flow.Control.Iss + 1)
        {
            return;
        }

        if (flow.Security is { } security && !CompleteKeyExchange(flow, security, p, c, ref payload, now))
        {
            return;
        }

        if (flow.Stream is { } st && !st.OnSynAck(p.Tcp, now))
        {
            return;
        }

        flow.UsePeer(p.SourceFlow, c.Nonce);
        flow.Control.OnPeerVerno(c.Verno);
        flow.Control.Acknowledge(c.Ackno, now);
        flow.UsePath(iface.Index, iface.Address);
        flow.UsePeerAddress(p.SourceRoute is { } r ? AdoptPort(r.Last, source, iface) : source);
        flow.State = SalState.Connected;
        flow.Stream?.UpdateMss(StreamOptionsFor(iface, flow.Security is not null).Mss);
        SendConnAck(flow, now);
        if (!payload.IsEmpty && flow.Stream is null)
        {
            OnTransport(flow, p, payload, now);
        }

        Emit(new EngineEvent(EngineEventKind.Connected, flow.Handle));
        MarkTransmit(flow);
        Schedule(flow);
    }

    private void OnHandshakeAck(Flow flow, in SalPacketRepr p, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        var l = flow.Listener!;
        if (l.Released)
        {
            return;
        }

        // The accept queue is checked before the stream sees the ACK: a full queue drops the ACK and leaves the request
        // (and its stream) in SYN-RECEIVED, so the SYN-ACK retransmission that follows still describes it.
        if (l.AcceptQueue.Count >= l.Backlog)
        {
            // A verified handshake with no room yet: remember it and complete it when the application makes room
            // (data the ACK carried is dropped; the transport retransmits it).
            Counters.SynDroppedPacket();
            if (!flow.HandshakeDeferred && (flow.Stream is null || (!p.ControlOnly && p.Protocol == SalPacketRepr.ProtocolTcp)))
            {
                flow.DeferHandshakeAck(p.Tcp);
                l.Deferred.Enqueue(flow);
            }

            return;
        }

        if (flow.Stream is { } st && (p.ControlOnly || p.Protocol != SalPacketRepr.ProtocolTcp || !st.OnHandshakeAck(p.Tcp, payload, now)))
        {
            return;
        }

        CompleteHandshake(flow, l, p, payload, now);
    }

    /// <summary>Completes handshakes that waited for room in the accept queue, oldest first.</summary>
    private void PromoteDeferred(ListenerSocket l, TimeSpan now)
    {
        while (l.AcceptQueue.Count < l.Backlog && l.Deferred.TryDequeue(out var flow))
        {
            flow.EndHandshakeDeferral();
            if (flow.State != SalState.Respond || flow.Listener != l)
            {
                continue;
            }

            _faultFlow = flow;
            try
            {
                if (flow.Stream is { } st && !st.OnHandshakeAck(flow.DeferredAck, [], now))
                {
                    continue;
                }

                CompleteHandshake(flow, l, default, [], now);
            }
            catch (Exception e)
            {
                OnFault(flow, "accept", e, now);
            }
            finally
            {
                _faultFlow = null;
            }
        }
    }

    private void CompleteHandshake(Flow flow, ListenerSocket l, in SalPacketRepr p, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        flow.Control.OnHandshakeAcknowledged();
        flow.State = SalState.Connected;
        l.Pending.Remove((flow.PeerFlow.Value, flow.PeerNonce.Value));
        l.AcceptQueue.Enqueue(flow);
        flow.EnterAcceptQueue();
        if (flow.Stream is null && !payload.IsEmpty && !p.ControlOnly)
        {
            OnTransport(flow, p, payload, now);
        }

        Emit(new EngineEvent(EngineEventKind.ConnectionPending, l.Handle));
        MarkTransmit(flow);
        Schedule(flow);
    }

    private void OnReset(Flow flow, SalControl c, TimeSpan now)
    {
        // Ours: an RST counts only when it carries our nonce (a reply to our packet) or the peer's (an active reset).
        var known = c.Nonce == flow.LocalNonce || (flow.State != SalState.Request && c.Nonce == flow.PeerNonce);
        if (!known)
        {
            Counters.ResetIgnored();
            return;
        }

        switch (flow.State)
        {
            case SalState.Request:
                if (!c.Has(SalControlFlags.Nack) && flow.AdvisoryAddress.IsNone && !flow.RefusalRetried && flow.DelayedPacketId == 0)
                {
                    // Refused by the host our service table (or a router's) picked: resolve the SYN once more at once.
                    // A router whose registration for a replica that just left is still in flight, or a weighted
                    // choice, then picks a replica that serves the service.
                    flow.OnRefusalRetried();
                    Counters.RefusalRetry();
                    if (SendSyn(flow, now) == ServalError.None)
                    {
                        break;
                    }
                }

                // A negative answer to our SYN: NACK means no node on the way knew the service.
                Fail(flow, c.Has(SalControlFlags.Nack) ? ServalError.ServiceNotFound : ServalError.ConnectionRefused, now);
                break;
            case SalState.Respond:
                Destroy(flow);
                break;
            case SalState.TimeWait or SalState.Closed:
                Destroy(flow);
                break;
            default:
                Fail(flow, ServalError.ConnectionReset, now);
                break;
        }
    }

    private void OnControlAck(Flow flow, SalControl c, LinkAddress source, TimeSpan now)
    {
        var ackno = c.Ackno;
        var migrating = flow.Migration is MigrationState.RsynReceived or MigrationState.RsynSentReceived;
        if (Serial.Lt(ackno, flow.Control.SndUna) || (Serial.Gt(ackno, flow.Control.SndNxt) && !migrating))
        {
            return;
        }

        // Our RSYN is acknowledged only by the matching RSYN|ACK (handled in OnRsyn), never by a plain ACK.
        var rsynPending = flow.Control.Holds(SalControlFlags.Rsyn);
        if (rsynPending && !c.Has(SalControlFlags.Rsyn))
        {
            if (migrating && flow.Control.RsynAckOwed && source == flow.MigrationPeerAddress)
            {
                CompletePeerMigration(flow, now);
            }

            return;
        }

        var acked = flow.Control.Pending && Serial.Lt(flow.Control.Verno, ackno);
        var ackedFlags = flow.Control.Flags;
        flow.Control.Acknowledge(ackno, now);
        if (migrating && !c.Has(SalControlFlags.Rsyn) && flow.Control.RsynAckOwed && source == flow.MigrationPeerAddress)
        {
            CompletePeerMigration(flow, now);
        }

        if (!acked)
        {
            return;
        }

        if ((ackedFlags & SalControlFlags.Rsyn) != 0 && flow.Migration == MigrationState.RsynSent)
        {
            // Handled by OnRsyn when the RSYN|ACK carries RSYN; a plain ACK does not complete our migration.
        }

        if ((ackedFlags & SalControlFlags.Fin) != 0)
        {
            switch (flow.State)
            {
                case SalState.FinWait1:
                    flow.State = SalState.FinWait2;
                    if (flow.CloseRequested)
                    {
                        // Only a closed flow waits at most FinWait2Timeout for the peer's FIN; a half-closed one still
                        // held by its application reads for as long as the peer sends (the timer starts at its close).
                        flow.StateTimerAt = now + _options.FinWait2Timeout;
                    }

                    break;
                case SalState.Closing:
                    EnterTimeWait(flow, now);
                    break;
                case SalState.LastAck:
                    Finish(flow, now);
                    return;
            }
        }

        Schedule(flow);
    }

    private void OnFin(Flow flow, SalControl c, TimeSpan now)
    {
        if (!flow.OnPeerFin())
        {
            SendPureAck(flow); // retransmitted FIN
            return;
        }

        flow.Control.OnPeerVerno(c.Verno);
        SendPureAck(flow);
        switch (flow.State)
        {
            case SalState.Connected:
                flow.State = SalState.CloseWait;
                break;
            case SalState.FinWait1:
                if (flow.Control.Holds(SalControlFlags.Fin))
                {
                    flow.State = SalState.Closing;
                }
                else
                {
                    EnterTimeWait(flow, now);
                }

                break;
            case SalState.FinWait2:
                EnterTimeWait(flow, now);
                break;
        }

        Emit(new EngineEvent(EngineEventKind.Readable, flow.Handle));
        if (flow.State == SalState.CloseWait && (flow.Stream is { FinAcknowledged: true } || (flow.Stream is null && flow.CloseRequested)))
        {
            SendFin(flow, now);
        }

        Schedule(flow);
    }

    private void OnTransport(Flow flow, in SalPacketRepr p, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        flow.OnHeardFromPeer();
        if (flow.Stream is { } st)
        {
            if (p.Protocol != SalPacketRepr.ProtocolTcp)
            {
                return;
            }

            var readable = st.Readable;
            var free = st.SendBufferFree;
            st.OnFlowSegment(p.Tcp, payload, now, Counters);
            if (!readable && st.Readable)
            {
                Emit(new EngineEvent(EngineEventKind.Readable, flow.Handle));
            }

            if (free == 0 && st.SendBufferFree > 0)
            {
                Emit(new EngineEvent(EngineEventKind.Writable, flow.Handle));
            }

            MarkTransmit(flow);
            return;
        }

        if (payload.IsEmpty || p.Protocol != SalPacketRepr.ProtocolUdp || flow.PeerClosed)
        {
            return;
        }

        if (flow.DatagramCount >= _options.DatagramQueueCapacity)
        {
            Counters.DatagramDropped();
            return;
        }

        flow.Datagrams.Enqueue(payload.ToArray());
        if (flow.Datagrams.Count == 1)
        {
            Emit(new EngineEvent(EngineEventKind.Readable, flow.Handle));
        }
    }
}
