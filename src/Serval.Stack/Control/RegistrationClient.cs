using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// The requesting side of the control protocol (docs/control-protocol.md, "Host behaviour"), shared by
/// <see cref="HostController"/> and a router's upstream registration: a set of prefixes kept registered with every
/// configured router through one unbound datagram socket — sent at once, retransmitted with backoff until
/// acknowledged, refreshed before the lease runs out, unregistered explicitly, and all sent again when a router
/// answers with a new epoch.
/// </summary>
/// <remarks>
/// <para><b>Why this type is large.</b> Registration, refresh, unregistration, failover between routers and the
/// resolution queries all share one socket, one sequence space, one router list and its routes, and the retransmission
/// timers of both; the per-prefix, per-router and per-query state are already types of their own (<see cref="ClientEntry"/>,
/// <see cref="ClientSlot"/>, <see cref="RouterLink"/>, <see cref="PendingQuery"/>).</para>
/// </remarks>
internal sealed class RegistrationClient
{
    /// <summary>Priority of the exact routes toward each router's serviceID (below socket DEMUX rules, above everything else we install).</summary>
    internal const uint RouterRoutePriority = 30_000;

    private readonly Engine _engine;
    private readonly HostControllerOptions _options;
    private readonly IRandomSource _random;
    private readonly RouterLink[] _routers;
    private readonly Dictionary<ServicePrefix, ClientEntry> _entries = [];
    private readonly PriorityQueue<(ClientSlot Slot, long Generation), TimeSpan> _timers = new();
    private readonly Dictionary<ServicePrefix, ServiceTarget> _pinned = [];
    private readonly List<ServiceTarget> _defaults = [];
    private readonly byte[] _message = new byte[ControlProtocol.AuthenticatedLength + ControlProtocol.SignatureTrailerLength];
    private readonly byte[] _receive = new byte[ControlProtocol.MaxMessageLength + 1];
    private readonly Dictionary<ServiceId, PendingQuery> _queries = [];
    private readonly Dictionary<uint, PendingQuery> _querySequences = [];
    private readonly PriorityQueue<(PendingQuery Query, long Generation), TimeSpan> _queryTimers = new();
    private readonly uint _leaseMilliseconds;
    private SocketHandle _socket;
    private int _active;
    private ulong _sender;
    private uint _sequence;

    public RegistrationClient(Engine engine, HostControllerOptions options, IRandomSource random, HostControllerCounters counters)
    {
        _engine = engine;
        _options = options;
        _random = random;
        Counters = counters;
        _routers = [.. options.Routers.Select((r, i) => new RouterLink(r, i))];
        _leaseMilliseconds = (uint)options.Lease.TotalMilliseconds;
        _sender = NewSender();
    }

    public HostControllerCounters Counters { get; }

    public SocketHandle Socket => _socket;

    public ulong Sender => _sender;

    public bool Started => !_socket.IsNone;

    /// <summary>Binds the control socket (unbound: the engine gives it a random serviceID on its first send) and installs the routes.</summary>
    public ServalError Start(TimeSpan now)
    {
        if (Started)
        {
            return ServalError.None;
        }

        var error = _engine.BindDatagram(null, now, out _socket);
        if (error != ServalError.None)
        {
            return error;
        }

        FollowInterfaces(now);
        EnsureRules(now);
        foreach (var e in _entries.Values)
        {
            foreach (var slot in e.Slots)
            {
                StartRound(slot, now);
            }
        }

        return ServalError.None;
    }

    /// <summary>Unregisters everything once (best effort), closes the socket and removes the routes it installed.</summary>
    public void Stop(TimeSpan now)
    {
        if (!Started)
        {
            return;
        }

        foreach (var e in _entries.Values)
        {
            e.Withdrawn = true;
            foreach (var slot in e.Slots)
            {
                if (IsActive(slot))
                {
                    slot.Attempts = 0;
                    Send(slot, now);
                }
            }
        }

        _entries.Clear();
        _timers.Clear();
        var queries = _queries.Values.ToList();
        _queries.Clear();
        _querySequences.Clear();
        _queryTimers.Clear();
        foreach (var q in queries)
        {
            q.Finish(null, now);
        }

        _engine.Close(_socket, now);
        _socket = SocketHandle.None;
        foreach (var (prefix, target) in _pinned)
        {
            _engine.Services.Remove(prefix, target);
        }

        foreach (var target in _defaults)
        {
            _engine.Services.Remove(ServicePrefix.Default, target);
        }

        _pinned.Clear();
        _defaults.Clear();
    }

    /// <summary>Registers (or updates) <paramref name="prefix"/>; false when the limit of tracked prefixes is reached.</summary>
    public bool Set(ServicePrefix prefix, uint weight, bool draining, ServiceTransports transports, TimeSpan now, ServiceKey? signer = null)
    {
        if (!_entries.TryGetValue(prefix, out var e))
        {
            if (_entries.Count >= _options.MaxRegistrations)
            {
                Counters.CountRegistrationsDropped();
                return false;
            }

            e = new ClientEntry(prefix, _routers.Length);
            _entries.Add(prefix, e);
        }
        else if (!e.Withdrawn && e.Weight == weight && e.Draining == draining && e.Transports == transports && e.Signer == signer)
        {
            return true;
        }

        e.Signer = signer;
        e.Weight = weight;
        e.Draining = draining;
        e.Transports = transports;
        e.Withdrawn = false;
        foreach (var slot in e.Slots)
        {
            slot.Done = false;
            StartRound(slot, now);
        }

        return true;
    }

    /// <summary>Unregisters <paramref name="prefix"/> from every router (at once, retried a few times).</summary>
    public void Withdraw(ServicePrefix prefix, TimeSpan now)
    {
        if (!_entries.TryGetValue(prefix, out var e) || e.Withdrawn)
        {
            return;
        }

        e.Withdrawn = true;
        foreach (var slot in e.Slots)
        {
            slot.Done = false;
            StartRound(slot, now);
        }

        RemoveIfDone(e);
    }

    /// <summary>Sends every registration to every router again now (address change, interface back up).</summary>
    public void ReregisterAll(TimeSpan now)
    {
        foreach (var e in _entries.Values)
        {
            foreach (var slot in e.Slots)
            {
                if (!(e.Withdrawn && slot.Done))
                {
                    StartRound(slot, now);
                }
            }
        }
    }

    public void OnReadable(SocketHandle socket, TimeSpan now)
    {
        if (Started && socket == _socket)
        {
            Drain(now);
        }
    }

    public void Poll(TimeSpan now)
    {
        if (!Started)
        {
            return;
        }

        Drain(now);
        while (_timers.TryPeek(out var item, out var at) && at <= now)
        {
            _timers.Dequeue();
            if (item.Generation == item.Slot.Generation && !item.Slot.Entry.Removed)
            {
                Fire(item.Slot, now);
            }
        }

        while (_queryTimers.TryPeek(out var q, out var due) && due <= now)
        {
            _queryTimers.Dequeue();
            if (q.Generation == q.Query.Generation && !q.Query.Done)
            {
                OnQueryTimeout(q.Query, now);
            }
        }
    }

    public TimeSpan? NextTimeout()
    {
        if (!Started)
        {
            return null;
        }

        TimeSpan? next = null;
        while (_timers.TryPeek(out var item, out var at))
        {
            if (item.Generation == item.Slot.Generation && !item.Slot.Entry.Removed)
            {
                next = at;
                break;
            }

            _timers.Dequeue();
        }

        while (_queryTimers.TryPeek(out var q, out var due))
        {
            if (q.Generation == q.Query.Generation && !q.Query.Done)
            {
                next = next is null || due < next ? due : next;
                break;
            }

            _queryTimers.Dequeue();
        }

        return next;
    }

    // ----------------------------------------------------------------------------------------------------------
    // Resolution queries (docs/control-protocol.md §9)

    /// <summary>
    /// Asks the routers where <paramref name="service"/> resolves: a Resolve to the first router, sent again after
    /// <see cref="HostControllerOptions.RetryInterval"/> (doubling) up to <see cref="HostControllerOptions.ResolveAttempts"/>
    /// times, then to the next router. <paramref name="completion"/> gets the answer (a resolution for the targets, or
    /// <see cref="ServiceResolution.NotFound"/>), or null when no router answered; queries for the same service share
    /// one exchange. False when not started, no router is configured or <see cref="HostControllerOptions.MaxQueries"/>
    /// queries are in progress.
    /// </summary>
    public bool Query(ServiceId service, TimeSpan now, Action<ServiceId, ServiceResolution?, TimeSpan> completion)
    {
        if (!Started || _routers.Length == 0)
        {
            return false;
        }

        if (_queries.TryGetValue(service, out var q))
        {
            q.Completions.Add(completion);
            return true;
        }

        if (_queries.Count >= _options.MaxQueries)
        {
            return false;
        }

        q = new PendingQuery(service) { Completions = { completion } };
        _queries.Add(service, q);
        Counters.CountQueries();
        SendQuery(q, now);
        return true;
    }

    /// <summary>Queries in progress.</summary>
    public int QueryCount => _queries.Count;

    private void SendQuery(PendingQuery q, TimeSpan now)
    {
        var r = _routers[q.Router];
        var sequence = NextSequence();
        q.Attempts++;
        _querySequences[sequence] = q;
        q.Sequences.Add(sequence);
        var message = new ControlMessage
        {
            Type = ControlMessageType.Resolve,
            Sender = _sender,
            Sequence = sequence,
            Epoch = r.Epoch,
            Timestamp = r.EstimateClock(now),
            Prefix = ServicePrefix.Exact(q.Service),
        };
        var n = message.Emit(_message, _options.Key.Span);
        EnsureRoute(r, now);
        if (_engine.SendTo(_socket, r.Endpoint.ServiceId, _message.AsSpan(0, n), now) == ServalError.None)
        {
            Counters.CountMessagesSent();
        }
        else
        {
            Counters.CountSendFailures();
        }

        q.Generation++;
        _queryTimers.Enqueue((q, q.Generation), now + RetryDelay(q.Attempts));
    }

    private void OnQueryTimeout(PendingQuery q, TimeSpan now)
    {
        Counters.CountRetransmissions();
        if (q.Attempts >= _options.ResolveAttempts)
        {
            q.Attempts = 0;
            q.Router++;
            if (q.Router >= _routers.Length)
            {
                Counters.CountQueriesFailed();
                FinishQuery(q, null, now);
                return;
            }
        }

        SendQuery(q, now);
    }

    private void OnResolveAck(in ControlMessage m, TimeSpan now)
    {
        if (m.Sender != _sender || !_querySequences.TryGetValue(m.Sequence, out var q) || q.Done
            || (m.Status == ControlStatus.Ok ? !m.Prefix.Contains(q.Service) : m.Prefix != ServicePrefix.Exact(q.Service)))
        {
            Counters.CountUnexpectedAcks();
            return;
        }

        Counters.CountAcksReceived();
        var r = _routers[q.Router];
        if (r.Learn(m, now))
        {
            Counters.CountRouterRestarts();
            ReregisterRouter(q.Router, now);
        }

        switch (m.Status)
        {
            case ControlStatus.Ok:
                FinishQuery(
                    q,
                    new ServiceResolution(m.Prefix, [.. m.Targets.Select(t => new ResolvedTarget(t.Address, r.Endpoint.Interface, t.Weight))], m.Lease),
                    now);
                break;
            case ControlStatus.NotFound:
                FinishQuery(q, ServiceResolution.NotFound(m.Lease), now);
                break;
            case ControlStatus.Stale:
                Counters.CountStaleAcks();
                SendQuery(q, now);
                break;
            default:
                Counters.CountRejectedAcks();
                q.Attempts = _options.ResolveAttempts;
                OnQueryTimeout(q, now);
                break;
        }
    }

    private void FinishQuery(PendingQuery q, ServiceResolution? resolution, TimeSpan now)
    {
        _queries.Remove(q.Service);
        foreach (var s in q.Sequences)
        {
            _querySequences.Remove(s);
        }

        q.Finish(resolution, now);
    }

    /// <summary>A router answered with a new epoch: it lost its registrations; send them all again now.</summary>
    private void ReregisterRouter(int router, TimeSpan now)
    {
        foreach (var e in _entries.Values)
        {
            var s = e.Slots[router];
            if (!(e.Withdrawn && s.Done))
            {
                s.Acked = false;
                StartRound(s, now);
            }
        }
    }

    public IReadOnlyList<HostRegistration> GetRegistrations() =>
        [.. _entries.Values.Where(e => !e.Withdrawn).Select(e => new HostRegistration(e.Prefix, e.Weight, e.Draining, e.Transports, e.Slots.Count(s => s.Acked)))];

    public IReadOnlyList<RouterStatus> GetRouters() =>
        [.. _routers.Select(r => new RouterStatus(r.Endpoint with { Interface = r.Interface }, r.Epoch, r.LastAckAt))];

    /// <summary>
    /// Picks again, for each router, the interface that reaches it (interfaces come and go: a link retired with its
    /// address, a new one for the new address): the one in use while it is up, else the configured one when it is up,
    /// else the first up, non-loopback interface of the router address's family; none up keeps the current one.
    /// Routes toward a router whose interface changed move with it (<see cref="EnsureRules"/>). True when any changed.
    /// </summary>
    public bool FollowInterfaces(TimeSpan now)
    {
        IReadOnlyList<InterfaceInfo>? interfaces = null;
        var changed = false;
        foreach (var r in _routers)
        {
            interfaces ??= _engine.Interfaces;
            var family = r.Endpoint.Address.Family;
            bool Usable(int i) => i > 0 && i < interfaces.Count && interfaces[i].IsUp && interfaces[i].Address.Family == family;
            var pick = Usable(r.Interface) ? r.Interface
                : Usable(r.Endpoint.Interface) ? r.Endpoint.Interface
                : interfaces.FirstOrDefault(i => Usable(i.Index)) is { Index: > 0 } first ? first.Index
                : r.Interface;
            if (pick != r.Interface)
            {
                r.Interface = pick;
                changed = true;
            }
        }

        if (changed)
        {
            Counters.CountInterfaceChanges();
            if (Started)
            {
                // Default rules toward a router over an interface it no longer uses go (the engine has usually
                // removed them with the interface already); EnsureRules installs them on the new one.
                foreach (var target in _defaults.ToList())
                {
                    if (!_routers.Any(r => r.Interface == target.Interface && r.Endpoint.Address == target.Address))
                    {
                        _engine.Services.Remove(ServicePrefix.Default, target);
                        _defaults.Remove(target);
                    }
                }

                EnsureRules(now);
            }
        }

        return changed;
    }

    /// <summary>Installs the default rule toward each router and the exact route to each router's serviceID.</summary>
    public void EnsureRules(TimeSpan now)
    {
        if (!Started)
        {
            return;
        }

        foreach (var r in _routers)
        {
            if (r.Interface <= 0)
            {
                continue; // no interface of its family yet (FollowInterfaces picks one when it comes up)
            }

            if (_options.InstallDefaultRule)
            {
                var target = ServiceTarget.Forward(r.Endpoint.Address, r.Interface);
                if (_engine.Services.Add(ServicePrefix.Default, target, _options.DefaultRulePriority, 1, now: now) == ServiceTableResult.Ok
                    && !_defaults.Contains(target))
                {
                    _defaults.Add(target);
                }
            }

            EnsureRoute(r, now);
        }
    }

    // ----------------------------------------------------------------------------------------------------------

    private void StartRound(ClientSlot slot, TimeSpan now)
    {
        slot.Attempts = 0;
        Schedule(slot, now);
    }

    private void Schedule(ClientSlot slot, TimeSpan at)
    {
        slot.Generation++;
        _timers.Enqueue((slot, slot.Generation), at);
    }

    private void Cancel(ClientSlot slot) => slot.Generation++;

    /// <summary>With <see cref="RouterSelection.One"/>: the router registrations currently go to.</summary>
    public int ActiveRouter => _active;

    private bool OneRouter => _options.RouterSelection == RouterSelection.One && _routers.Length > 1;

    private bool IsActive(ClientSlot slot) => !OneRouter || slot.Router == _active;

    /// <summary>The active router left a round unanswered: every registration goes to the next router of the list.</summary>
    private void Failover(TimeSpan now)
    {
        var previous = _active;
        _active = (_active + 1) % _routers.Length;
        Counters.CountFailovers();
        foreach (var e in _entries.Values.ToList())
        {
            var old = e.Slots[previous];
            Cancel(old);
            old.Acked = false;
            old.Attempts = 0;
            if (e.Withdrawn)
            {
                // The old router's lease removes it; nothing to withdraw from the new one.
                foreach (var s in e.Slots)
                {
                    s.Done = true;
                }

                RemoveIfDone(e);
                continue;
            }

            var slot = e.Slots[_active];
            slot.Acked = false;
            slot.Done = false;
            StartRound(slot, now);
        }
    }

    private void Fire(ClientSlot slot, TimeSpan now)
    {
        var e = slot.Entry;
        if (!IsActive(slot))
        {
            if (e.Withdrawn)
            {
                slot.Done = true;
                RemoveIfDone(e);
            }

            return;
        }

        // A router that never answered yet may still be starting: it gets two more messages before the next is tried.
        if (OneRouter && !e.Withdrawn && slot.Attempts >= _options.FailoverAttempts + (_routers[slot.Router].Epoch == 0 ? 2 : 0))
        {
            Failover(now);
            return;
        }
        if (e.Withdrawn)
        {
            if (slot.Done)
            {
                return;
            }

            if (slot.Attempts >= _options.MaxUnregisterAttempts)
            {
                // Unanswered: the router's lease removes the registration anyway.
                slot.Done = true;
                slot.Acked = false;
                RemoveIfDone(e);
                return;
            }
        }

        if (slot.Attempts > 0)
        {
            Counters.CountRetransmissions();
        }

        Send(slot, now);
        Schedule(slot, now + RetryDelay(slot.Attempts));
    }

    /// <summary>Sends the slot's current message (Register or Unregister) with a new sequence number.</summary>
    private void Send(ClientSlot slot, TimeSpan now)
    {
        var e = slot.Entry;
        var r = _routers[slot.Router];
        var sequence = NextSequence();
        if (slot.Attempts == 0)
        {
            slot.RoundStart = sequence;
        }

        slot.LastSequence = sequence;
        slot.Attempts++;
        var register = !e.Withdrawn;
        var flags = ControlMessageFlags.None;
        if (register && e.Draining)
        {
            flags |= ControlMessageFlags.Draining;
        }

        if (register && slot.Acked)
        {
            flags |= ControlMessageFlags.Refresh;
        }

        var message = new ControlMessage
        {
            Type = register ? ControlMessageType.Register : ControlMessageType.Unregister,
            Flags = flags,
            Sender = _sender,
            Sequence = sequence,
            Epoch = r.Epoch,
            Timestamp = r.EstimateClock(now),
            Weight = register ? e.Weight : 0,
            LeaseMilliseconds = register ? _leaseMilliseconds : 0,
            Prefix = e.Prefix,
            Transports = e.Transports,
        };
        var n = message.Emit(_message, _options.Key.Span, e.Signer);
        EnsureRoute(r, now);
        if (_engine.SendTo(_socket, r.Endpoint.ServiceId, _message.AsSpan(0, n), now) == ServalError.None)
        {
            Counters.CountMessagesSent();
        }
        else
        {
            Counters.CountSendFailures();
        }
    }

    private uint NextSequence()
    {
        if (_sequence == uint.MaxValue)
        {
            // Sequence space exhausted: continue as a new sender (routers see a new incarnation; old state expires).
            _sender = NewSender();
            _sequence = 0;
            foreach (var e in _entries.Values)
            {
                foreach (var slot in e.Slots)
                {
                    slot.Attempts = 0;
                }
            }
        }

        return ++_sequence;
    }

    private ulong NewSender()
    {
        while (true)
        {
            var s = _random.NextUInt64();
            if (s != 0 && s != _sender)
            {
                return s;
            }
        }
    }

    private TimeSpan RetryDelay(int attempts)
    {
        var ticks = _options.RetryInterval.Ticks << Math.Min(Math.Max(attempts - 1, 0), 20);
        return ticks <= 0 || ticks > _options.RefreshInterval.Ticks ? _options.RefreshInterval : TimeSpan.FromTicks(ticks);
    }

    /// <summary>The refresh period with up to 10 % taken off at random, so that refreshes of many prefixes spread out.</summary>
    private TimeSpan RefreshDelay() =>
        TimeSpan.FromTicks(_options.RefreshInterval.Ticks - (long)(_options.RefreshInterval.Ticks * 0.1 * _random.NextDouble()));

    private void RemoveIfDone(ClientEntry e)
    {
        if (e.Withdrawn && e.Slots.All(s => s.Done))
        {
            e.Removed = true;
            _entries.Remove(e.Prefix);
        }
    }

    /// <summary>
    /// Points the exact route for the router's serviceID at this router. Routers sharing one serviceID (the usual
    /// case: the well-known one) share the route, so it is re-pointed before each send.
    /// </summary>
    private void EnsureRoute(RouterLink r, TimeSpan now)
    {
        if (r.Interface <= 0)
        {
            return;
        }

        var prefix = ServicePrefix.Exact(r.Endpoint.ServiceId);
        var target = ServiceTarget.Forward(r.Endpoint.Address, r.Interface);
        var services = _engine.Services;
        var pinned = _pinned.TryGetValue(prefix, out var current);
        if (pinned && current == target && services.TryGetExact(prefix, out var entry) && entry.TryGetRule(target, out _))
        {
            return;
        }

        if (pinned && current != target)
        {
            services.Remove(prefix, current);
        }

        services.Add(prefix, target, RouterRoutePriority, 1, now: now);
        _pinned[prefix] = target;
    }

    private void Drain(TimeSpan now)
    {
        while (_engine.ReceiveFrom(_socket, _receive, out var n, out _, out _) == ServalError.None)
        {
            OnAck(_receive.AsSpan(0, n), now);
        }
    }

    private void OnAck(ReadOnlySpan<byte> data, TimeSpan now)
    {
        if (!ControlMessage.TryParse(data, out var m, out _) || !m.IsAck)
        {
            Counters.CountMalformed();
            return;
        }

        if (!_options.Key.IsEmpty
            && !(ControlMessageView.TryCreate(data, out var view, out _) && view.VerifyMac(_options.Key.Span)))
        {
            Counters.CountUnauthenticated();
            return;
        }

        if (m.Type == ControlMessageType.ResolveAck)
        {
            OnResolveAck(m, now);
            return;
        }

        if (m.Sender != _sender || !_entries.TryGetValue(m.Prefix, out var e))
        {
            Counters.CountUnexpectedAcks();
            return;
        }

        var slot = e.Slots.FirstOrDefault(s => s.Attempts > 0 && m.Sequence >= s.RoundStart && m.Sequence <= s.LastSequence);
        var expected = e.Withdrawn ? ControlMessageType.UnregisterAck : ControlMessageType.RegisterAck;
        if (slot is null || m.Type != expected || (e.Withdrawn && slot.Done))
        {
            Counters.CountUnexpectedAcks();
            return;
        }

        Counters.CountAcksReceived();
        var r = _routers[slot.Router];
        var restarted = r.Learn(m, now);
        if (restarted)
        {
            Counters.CountRouterRestarts();
        }

        switch (m.Status)
        {
            case ControlStatus.Ok when e.Withdrawn:
                slot.Done = true;
                slot.Acked = false;
                slot.Attempts = 0;
                Cancel(slot);
                RemoveIfDone(e);
                break;
            case ControlStatus.Ok:
                slot.Acked = true;
                slot.Attempts = 0;
                Schedule(slot, now + RefreshDelay());
                break;
            case ControlStatus.Stale:
                // Not applied; we now know the router's epoch and clock. Resend at once (backing off if it persists).
                Counters.CountStaleAcks();
                Schedule(slot, slot.Attempts <= 2 ? now : now + RetryDelay(slot.Attempts));
                break;
            default:
                Counters.CountRejectedAcks();
                if (e.Withdrawn)
                {
                    slot.Done = true;
                    Cancel(slot);
                    RemoveIfDone(e);
                }
                else
                {
                    slot.Acked = false;
                    slot.Attempts = 0;
                    Schedule(slot, now + _options.RefreshInterval);
                }

                break;
        }

        if (restarted)
        {
            // The router lost its state: send it everything again now.
            foreach (var other in _entries.Values)
            {
                var s = other.Slots[slot.Router];
                if (s != slot && !(other.Withdrawn && s.Done))
                {
                    s.Acked = false;
                    StartRound(s, now);
                }
            }
        }
    }
}
