using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// The service-router side of the control plane (docs/design.md, "Control plane"; docs/control-protocol.md, "Router
/// behaviour"): listens on the router serviceID, installs a FORWARD rule toward the registering host (the datagram's
/// source link address) per registration, removes it on Unregister or when the lease runs out, keeps draining
/// registrations without a rule, acknowledges every applied request with its epoch (random per start), and with a
/// key ignores unauthenticated, stale and replayed requests. Optionally registers its prefixes (aggregated) with an
/// upstream router. Sans-I/O: see <see cref="IEngineController"/> for how it is driven.
/// </summary>
/// <remarks>
/// The engine should run in <see cref="EngineMode.ServiceRouter"/> mode so that it forwards the SYNs the rules
/// resolve. Not thread-safe; call it on the engine's thread. <see cref="Counters"/> may be read from any thread.
/// <para><b>Why this type is large.</b> A router's registrations, its peers, its upstream registration, its fleet and its
/// draining all act on one registration table and one set of FORWARD rules; the partial files split them by concern
/// (docs/control-protocol.md §§6–8), and the requesting side is a type of its own (<c>RegistrationClient</c>).</para>
/// </remarks>
public sealed partial class RouterController : IEngineController
{
    private readonly Engine _engine;
    private readonly RouterControllerOptions _options;
    private readonly Dictionary<ulong, Peer> _peers = [];
    private readonly Dictionary<ServiceId, int> _signedServices = [];
    private readonly Dictionary<(ServicePrefix Prefix, ServiceTarget Target), RuleUse> _rules = [];
    private readonly PriorityQueue<Registration, TimeSpan> _expiry = new();
    private readonly PriorityQueue<Peer, TimeSpan> _peerExpiry = new();
    private readonly byte[] _receive = new byte[ControlProtocol.MaxMessageLength + 1];
    private readonly byte[] _send = new byte[ControlProtocol.MaxMessageLength];
    private SocketHandle _socket;
    private int _registrationCount;

    /// <summary>Creates a router controller for <paramref name="engine"/> with a new random epoch; nothing happens until <see cref="Start"/>.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public RouterController(Engine engine, RouterControllerOptions options, IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        _engine = engine;
        _options = options;
        ulong epoch;
        do
        {
            epoch = random.NextUInt64();
        }
        while (epoch == 0);
        Epoch = epoch;
        if (options.Upstream is { } upstream)
        {
            UpstreamCounters = new HostControllerCounters();
            _upstream = new RegistrationClient(engine, upstream, random, UpstreamCounters);
        }
    }

    /// <summary>The settings.</summary>
    public RouterControllerOptions Options => _options;

    /// <summary>This router incarnation's epoch, carried in every acknowledgement; hosts re-register when it changes.</summary>
    public ulong Epoch { get; }

    /// <summary>Counters.</summary>
    public RouterControllerCounters Counters { get; } = new();

    /// <summary>Counters of the upstream registration, or null without <see cref="RouterControllerOptions.Upstream"/>.</summary>
    public HostControllerCounters? UpstreamCounters { get; }

    /// <summary>The socket bound to the router serviceID (<see cref="SocketHandle.None"/> until started).</summary>
    public SocketHandle Socket => _socket;

    /// <summary>
    /// Called (on the engine's thread) when a registration's FORWARD rule is installed, changes weight, or is removed —
    /// the rules a router would publish elsewhere, for example in DNS (docs/resolution.md, "Publishing registrations").
    /// Several registrations of one prefix from one address share a rule: one call when the first appears, one when
    /// the last goes. Drained registrations have no rule. <see cref="Stop"/> reports every rule as removed.
    /// </summary>
    public Action<RegistrationRuleChange>? RegistrationRuleChanged { get; set; }

    /// <summary>Registrations added, refreshed, expired or withdrawn here, and drains started or ended (for logs).</summary>
    public Action<RouterRegistrationEvent>? RegistrationEvent { get; set; }

    /// <summary>Number of registrations held.</summary>
    public int RegistrationCount => _registrationCount;

    /// <summary>Number of senders tracked.</summary>
    public int PeerCount => _peers.Count;

    /// <summary>Binds the router serviceID and starts the upstream registration if configured.</summary>
    /// <returns>The engine's error if the serviceID cannot be bound (for example already in use).</returns>
    public ServalError Start(TimeSpan now)
    {
        if (!_socket.IsNone)
        {
            return ServalError.None;
        }

        var error = _engine.BindDatagram(ServicePrefix.Exact(_options.ServiceId), now, out _socket);
        if (error != ServalError.None)
        {
            return error;
        }

        return _upstream?.Start(now) ?? ServalError.None;
    }

    /// <summary>Removes every rule it installed, stops the upstream registration and closes the socket. Hosts re-register with the next incarnation.</summary>
    public void Stop(TimeSpan now)
    {
        if (_socket.IsNone)
        {
            return;
        }

        _upstream?.Stop(now);
        foreach (var (key, use) in _rules)
        {
            _engine.Services.Remove(key.Prefix, key.Target);
            if (use.Registration)
            {
                RegistrationRuleChanged?.Invoke(new RegistrationRuleChange(key.Prefix, key.Target.Address, use.Weight, Installed: false));
            }
        }

        _rules.Clear();
        foreach (var peer in _peers.Values)
        {
            peer.Removed = true;
            foreach (var reg in peer.Registrations.Values)
            {
                reg.Removed = true;
            }
        }

        _peers.Clear();
        _signedServices.Clear();
        StopFleet();
        _exports.Clear();
        _expiry.Clear();
        _peerExpiry.Clear();
        _registrationCount = 0;
        _engine.Close(_socket, now);
        _socket = SocketHandle.None;
    }

    /// <summary>A snapshot of every registration.</summary>
    public IReadOnlyList<RouterRegistration> GetRegistrations() =>
        [.. _peers.Values.SelectMany(p => p.Registrations.Values.Select(r =>
            new RouterRegistration(r.Prefix, p.Address, p.Interface, r.Weight, r.Draining, r.Transports, p.Sender, r.ExpiresAt) { DrainedByRouter = IsDrainedHere(r) }))];

    /// <summary>The prefixes registered upstream (empty without an upstream).</summary>
    public IReadOnlyList<HostRegistration> GetUpstreamRegistrations() => _upstream?.GetRegistrations() ?? [];

    /// <inheritdoc/>
    public void OnEvent(in EngineEvent engineEvent, TimeSpan now)
    {
        switch (engineEvent.Kind)
        {
            case EngineEventKind.Readable when engineEvent.Socket == _socket && !_socket.IsNone:
                Drain(now);
                break;
            case EngineEventKind.Readable:
                _upstream?.OnReadable(engineEvent.Socket, now);
                break;
            case EngineEventKind.InterfaceUp:
                Reinstall(now);
                _upstream?.FollowInterfaces(now);
                _upstream?.EnsureRules(now);
                _upstream?.ReregisterAll(now);
                break;
            case EngineEventKind.InterfaceDown:
                if (_upstream is { Started: true } upstream && upstream.FollowInterfaces(now))
                {
                    upstream.ReregisterAll(now);
                }

                break;
            case EngineEventKind.AddressChanged:
                _upstream?.EnsureRules(now);
                _upstream?.ReregisterAll(now);
                break;
        }
    }

    /// <inheritdoc/>
    public void Poll(TimeSpan now)
    {
        if (_socket.IsNone)
        {
            return;
        }

        Drain(now);
        PollRegistry(now);
        ExpireRegistrations(now);
        ExpirePeers(now);
        _upstream?.Poll(now);
    }

    /// <inheritdoc/>
    public TimeSpan? NextTimeout(TimeSpan now)
    {
        if (_socket.IsNone)
        {
            return null;
        }

        TimeSpan? next = _upstream?.NextTimeout();
        if (_expiry.TryPeek(out _, out var e) && (next is null || e < next))
        {
            next = e;
        }

        if (_peerExpiry.TryPeek(out _, out var p) && (next is null || p < next))
        {
            next = p;
        }

        return next;
    }

    // ----------------------------------------------------------------------------------------------------------
    // Requests

    private void Drain(TimeSpan now)
    {
        while (_engine.ReceiveFrom(_socket, _receive, out var n, out var from, out var source) == ServalError.None)
        {
            Counters.CountMessagesReceived();
            OnRequest(_receive.AsSpan(0, n), from, source, now);
        }
    }

    private void OnRequest(ReadOnlySpan<byte> data, ServiceId from, LinkAddress source, TimeSpan now)
    {
        if (!ControlMessage.TryParse(data, out var m, out _) || m.IsAck || m.Type is ControlMessageType.RouterSolicit or ControlMessageType.RouterAdvertise)
        {
            Counters.CountMalformed();
            return;
        }

        var keyed = !_options.Key.IsEmpty;
        if (keyed)
        {
            if (!m.IsAuthenticated)
            {
                Counters.CountUnauthenticated();
                return;
            }

            if (!(ControlMessageView.TryCreate(data, out var view, out _) && view.VerifyMac(_options.Key.Span)))
            {
                Counters.CountBadMac();
                return;
            }
        }

        // A signed Register or Unregister of a self-certifying serviceID (§5.1): the key must make the serviceID and
        // sign the message; then it must be as fresh as an authenticated one (epoch, timestamp, sequence number).
        var signed = false;
        if (m.IsSigned)
        {
            ControlMessageView.TryCreate(data, out var signedView, out _);
            switch (signedView.VerifySignature())
            {
                case RegistrationSignatureCheck.Valid:
                    signed = true;
                    break;
                case RegistrationSignatureCheck.ForeignKey:
                    Counters.CountForeignKeys();
                    return;
                default:
                    Counters.CountBadSignatures();
                    return;
            }
        }

        _peers.TryGetValue(m.Sender, out var peer);
        if (!signed && m.Type != ControlMessageType.Resolve && NeedsSignature(m.Prefix, peer))
        {
            Counters.CountUnsignedRegistrations();
            return;
        }

        var fresh = keyed || signed;
        if (fresh && !IsCurrent(m, now))
        {
            // Authentic but from another epoch or outside the replay window: not applied; tell the sender our epoch
            // and clock. An existing sender's reply route is not moved by such a message.
            Counters.CountStale();
            peer ??= NewPeer(m.Sender, from, source, now);
            if (peer is not null)
            {
                Acknowledge(peer, m, ControlStatus.Stale, m.Weight, 0, now);
            }

            return;
        }

        if (peer is not null && (peer.ReplyService != from || peer.Address != source) && peer.SignedRegistrations > 0
            && !(signed && peer.Registrations.TryGetValue(m.Prefix, out var held) && held.Signed))
        {
            // A sender holding signed registrations moves only with a signed message for one of them: anyone who
            // saw its sender identifier could otherwise take its registrations to an address of their choosing.
            Counters.CountRefusedMoves();
            return;
        }

        if (fresh && peer is not null && !peer.Replay.TryAccept(m.Sequence))
        {
            Counters.CountReplayed();
            return;
        }

        if (peer is null)
        {
            peer = NewPeer(m.Sender, from, source, now);
            if (peer is null)
            {
                return;
            }

            if (fresh)
            {
                peer.Replay.TryAccept(m.Sequence);
            }
        }
        else if (!Relocate(peer, from, source, now))
        {
            return;
        }

        if (signed)
        {
            Counters.CountSignedAccepted();
        }

        peer.LastAccepted = now;
        switch (m.Type)
        {
            case ControlMessageType.Register:
                OnRegister(peer, m, signed, now);
                break;
            case ControlMessageType.Unregister:
                OnUnregister(peer, m, now);
                break;
            default:
                OnResolve(peer, m, now);
                break;
        }
    }

    /// <summary>With a key: the request names our epoch and its timestamp is within the replay window of our clock.</summary>
    private bool IsCurrent(in ControlMessage m, TimeSpan now)
    {
        if (m.Epoch != Epoch)
        {
            return false;
        }

        var clock = Clock(now);
        var window = (ulong)(_options.ReplayWindow.Ticks / TimeSpan.TicksPerMillisecond);
        var distance = m.Timestamp > clock ? m.Timestamp - clock : clock - m.Timestamp;
        return distance <= window;
    }

    private static ulong Clock(TimeSpan now) => (ulong)Math.Max(0, now.Ticks / TimeSpan.TicksPerMillisecond);

    /// <summary>
    /// Whether a Register or Unregister of <paramref name="prefix"/> must be signed: the prefix lies within or contains
    /// one of <see cref="RouterControllerOptions.SelfCertifyingPrefixes"/>, or its serviceID holds a signed
    /// registration here (from any sender).
    /// </summary>
    private bool NeedsSignature(ServicePrefix prefix, Peer? peer)
    {
        foreach (var region in _options.SelfCertifyingPrefixes)
        {
            if (region.Contains(prefix) || prefix.Contains(region))
            {
                return true;
            }
        }

        return (peer is not null && peer.Registrations.TryGetValue(prefix, out var reg) && reg.Signed)
            || (prefix.Length == ServiceId.Bits && _signedServices.ContainsKey(prefix.Id));
    }

    private void OnRegister(Peer peer, in ControlMessage m, bool signed, TimeSpan now)
    {
        if (m.Prefix.Length < _options.MinPrefixLength)
        {
            Counters.CountRejected();
            Acknowledge(peer, m, ControlStatus.Rejected, m.Weight, 0, now);
            return;
        }

        var isNew = !peer.Registrations.TryGetValue(m.Prefix, out var reg);
        if (isNew)
        {
            if (_registrationCount >= _options.MaxRegistrations || peer.Registrations.Count >= _options.MaxRegistrationsPerPeer)
            {
                Counters.CountRejected();
                Acknowledge(peer, m, ControlStatus.Rejected, m.Weight, 0, now);
                return;
            }

            reg = new Registration(peer, m.Prefix);
            peer.Registrations.Add(m.Prefix, reg);
            _registrationCount++;
            Counters.CountRegistered();
        }
        else
        {
            Counters.CountRefreshed();
        }

        if (signed && !reg!.Signed)
        {
            reg.Signed = true;
            peer.SignedRegistrations++;
            _signedServices[reg.Prefix.Id] = _signedServices.GetValueOrDefault(reg.Prefix.Id) + 1;
        }

        var lease = m.Lease < _options.MinLease ? _options.MinLease : m.Lease > _options.MaxLease ? _options.MaxLease : m.Lease;
        var draining = (m.Flags & ControlMessageFlags.Draining) != 0;
        var drainChanged = isNew ? draining : reg!.Draining != draining;
        var changed = isNew || reg!.Weight != m.Weight || reg.Draining != draining;
        reg!.Weight = m.Weight;
        reg.Draining = draining;
        reg.Transports = m.Transports;
        reg.ExpiresAt = now + lease;
        var leaseChanged = reg.Lease != lease;
        reg.Lease = lease;
        ApplyRule(reg, now);
        if (changed || leaseChanged)
        {
            reg.PublishedAt = now;
            Publish(reg, now);
        }
        else
        {
            Refreshed(reg, now);
        }

        if (!reg.Queued)
        {
            reg.Queued = true;
            _expiry.Enqueue(reg, reg.ExpiresAt);
        }

        if (changed)
        {
            UpdateExport(reg, now);
        }

        RegistrationEvent?.Invoke(new RouterRegistrationEvent(isNew ? RouterRegistrationEventKind.Added : RouterRegistrationEventKind.Refreshed, reg.Prefix, peer.Address, reg.Weight));
        if (drainChanged)
        {
            RegistrationEvent?.Invoke(new RouterRegistrationEvent(draining ? RouterRegistrationEventKind.DrainStarted : RouterRegistrationEventKind.DrainEnded, reg.Prefix, peer.Address, reg.Weight));
        }

        Acknowledge(peer, m, ControlStatus.Ok, reg.Weight, (uint)lease.TotalMilliseconds, now);
    }

    private void OnUnregister(Peer peer, in ControlMessage m, TimeSpan now)
    {
        if (peer.Registrations.TryGetValue(m.Prefix, out var reg))
        {
            RemoveRegistration(reg, now);
            Counters.CountUnregistered();
            RegistrationEvent?.Invoke(new RouterRegistrationEvent(RouterRegistrationEventKind.Withdrawn, reg.Prefix, peer.Address, reg.Weight));
        }

        Acknowledge(peer, m, ControlStatus.Ok, 0, 0, now);
    }

    /// <summary>
    /// Answers a Resolve from this router's service table: the top priority set of the longest match, if it holds
    /// FORWARD rules (at most <see cref="ControlProtocol.MaxResolveTargets"/>, the heaviest first) or a socket of this
    /// router (answered with this router's own address), for the entry's prefix — never for a prefix shorter than
    /// <see cref="RouterControllerOptions.MinPrefixLength"/> (a default route is no answer about a service). Anything
    /// else is NotFound.
    /// </summary>
    private void OnResolve(Peer peer, in ControlMessage m, TimeSpan now)
    {
        Counters.CountResolveRequests();
        var service = m.Prefix.Id;
        var targets = new List<ControlTarget>();
        var prefix = m.Prefix;
        if (_engine.Services.Lookup(service) is { } entry && entry.Prefix.Length >= Math.Max(1, _options.MinPrefixLength))
        {
            foreach (var rule in entry.TopSet.Rules.OrderByDescending(r => r.Weight))
            {
                if (targets.Count == ControlProtocol.MaxResolveTargets)
                {
                    break;
                }

                switch (rule.Target.Type)
                {
                    case ServiceTargetType.Forward when !rule.Target.Address.SameAddress(peer.Address):
                        targets.Add(new ControlTarget(rule.Target.Address, Math.Min(rule.Weight, ControlProtocol.MaxWeight)));
                        break;
                    case ServiceTargetType.Demux when (uint)peer.Interface < (uint)_engine.Interfaces.Count:
                        var self = _engine.Interfaces[peer.Interface].Address;
                        if (!targets.Any(t => t.Address == self))
                        {
                            targets.Add(new ControlTarget(self, 1));
                        }

                        break;
                }
            }

            prefix = entry.Prefix;
        }

        if (targets.Count == 0)
        {
            Counters.CountResolveNotFound();
            Acknowledge(peer, m, ControlStatus.NotFound, 0, (uint)_options.ResolveNegativeLifetime.TotalMilliseconds, now);
            return;
        }

        Acknowledge(peer, m with { Prefix = prefix }, ControlStatus.Ok, 0, (uint)_options.ResolveLifetime.TotalMilliseconds, now, targets);
    }

    private void Acknowledge(Peer peer, in ControlMessage request, ControlStatus status, uint weight, uint leaseMilliseconds, TimeSpan now, IReadOnlyList<ControlTarget>? targets = null)
    {
        var resolve = request.Type == ControlMessageType.Resolve;
        var ack = new ControlMessage
        {
            Type = request.Type switch
            {
                ControlMessageType.Register => ControlMessageType.RegisterAck,
                ControlMessageType.Unregister => ControlMessageType.UnregisterAck,
                _ => ControlMessageType.ResolveAck,
            },
            Flags = request.Flags & ControlMessageFlags.Draining,
            Status = status,
            Sender = request.Sender,
            Sequence = request.Sequence,
            Epoch = Epoch,
            Timestamp = Clock(now),
            Weight = resolve ? 0 : weight,
            LeaseMilliseconds = resolve && status is not (ControlStatus.Ok or ControlStatus.NotFound) ? 0 : leaseMilliseconds,
            Prefix = request.Prefix,
            Transports = request.Transports,
            Targets = status == ControlStatus.Ok ? targets ?? [] : [],
        };
        var n = ack.Emit(_send, _options.Key.Span);
        if (_engine.SendTo(_socket, peer.ReplyService, _send.AsSpan(0, n), now) == ServalError.None)
        {
            Counters.CountAcksSent();
        }
        else
        {
            Counters.CountSendFailures();
        }
    }

    // ----------------------------------------------------------------------------------------------------------
    // Expiry

    private void ExpireRegistrations(TimeSpan now)
    {
        while (_expiry.TryPeek(out var reg, out var at) && at <= now)
        {
            _expiry.Dequeue();
            reg.Queued = false;
            if (reg.Removed)
            {
                continue;
            }

            if (reg.ExpiresAt > now)
            {
                reg.Queued = true;
                _expiry.Enqueue(reg, reg.ExpiresAt);
                continue;
            }

            RemoveRegistration(reg, now);
            Counters.CountExpired();
            RegistrationEvent?.Invoke(new RouterRegistrationEvent(RouterRegistrationEventKind.Expired, reg.Prefix, reg.Peer.Address, reg.Weight));
        }
    }

    private void ExpirePeers(TimeSpan now)
    {
        while (_peerExpiry.TryPeek(out var peer, out var at) && at <= now)
        {
            _peerExpiry.Dequeue();
            if (peer.Removed)
            {
                continue;
            }

            var until = peer.LastAccepted + _options.PeerRetention;
            if (peer.Registrations.Count > 0 || until > now)
            {
                _peerExpiry.Enqueue(peer, until > now ? until : now + _options.PeerRetention);
                continue;
            }

            peer.Removed = true;
            _peers.Remove(peer.Sender);
            ReleaseRule(ServicePrefix.Exact(peer.ReplyService), peer.Target);
        }
    }
}
