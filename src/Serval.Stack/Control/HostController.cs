using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// The host side of the control plane (docs/design.md, "Control plane"; docs/control-protocol.md, "Host behaviour"):
/// installs the default rule toward its service router(s), registers every prefix a local socket binds
/// (<see cref="EngineEventKind.ServiceRegistered"/>) with each router, refreshes it on the lease, unregisters it at
/// once when the last socket on it closes, and registers everything again when a router restarts (new epoch) or
/// the host's address changes. Sans-I/O: see <see cref="IEngineController"/> for how it is driven.
/// </summary>
/// <remarks>
/// Hand it the engine's events from the start (it may be started later): prefixes bound before it saw any event are
/// not discovered. If the engine's event queue overflows, prefixes whose sockets are gone are found on the next
/// <see cref="Poll"/> and unregistered. Not thread-safe; call it on the engine's thread. <see cref="Counters"/> may be
/// read from any thread.
/// </remarks>
public sealed class HostController : IEngineController
{
    private readonly Engine _engine;
    private readonly HostControllerOptions _options;
    private readonly RegistrationClient _client;
    private readonly Dictionary<ServicePrefix, Dictionary<long, TransportProtocol>> _local = [];
    private readonly Dictionary<ServicePrefix, uint> _weights = [];
    private readonly HashSet<ServicePrefix> _draining = [];
    private long _eventsDropped;

    /// <summary>Creates a controller for <paramref name="engine"/>; nothing happens until <see cref="Start"/>.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public HostController(Engine engine, HostControllerOptions options, IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        _engine = engine;
        _options = options;
        _client = new RegistrationClient(engine, options, random, Counters);
    }

    /// <summary>The settings.</summary>
    public HostControllerOptions Options => _options;

    /// <summary>Counters.</summary>
    public HostControllerCounters Counters { get; } = new();

    /// <summary>The control socket (an unbound datagram socket; <see cref="SocketHandle.None"/> until started).</summary>
    public SocketHandle Socket => _client.Socket;

    /// <summary>This controller incarnation's sender identifier (random, carried in every message).</summary>
    public ulong Sender => _client.Sender;

    /// <summary>Binds the control socket, installs the rules toward the routers and registers the prefixes seen so far.</summary>
    /// <returns>The engine's error if the socket cannot be created.</returns>
    public ServalError Start(TimeSpan now)
    {
        var error = _client.Start(now);
        if (error == ServalError.None)
        {
            _eventsDropped = _engine.Counters.EventsDropped;
            foreach (var prefix in _local.Keys)
            {
                Update(prefix, now);
            }
        }

        return error;
    }

    /// <summary>Unregisters every prefix (one message per router, not retried), closes the socket and removes the rules it installed.</summary>
    public void Stop(TimeSpan now) => _client.Stop(now);

    /// <summary>The prefixes currently registered (not those being unregistered).</summary>
    public IReadOnlyList<HostRegistration> GetRegistrations() => _client.GetRegistrations();

    /// <summary>What is known about each configured router.</summary>
    public IReadOnlyList<RouterStatus> GetRouters() => _client.GetRouters();

    /// <inheritdoc/>
    public void OnEvent(in EngineEvent engineEvent, TimeSpan now)
    {
        switch (engineEvent.Kind)
        {
            case EngineEventKind.ServiceRegistered:
                OnBound(engineEvent.Prefix, engineEvent.Socket, engineEvent.Protocol, now);
                break;
            case EngineEventKind.ServiceUnregistered:
                OnUnbound(engineEvent.Prefix, engineEvent.Socket, now);
                break;
            case EngineEventKind.Readable:
                _client.OnReadable(engineEvent.Socket, now);
                break;
            case EngineEventKind.AddressChanged:
                if (_client.Started)
                {
                    Counters.CountAddressChanges();
                    _client.EnsureRules(now);
                    _client.ReregisterAll(now);
                }

                break;
            case EngineEventKind.InterfaceUp:
                _client.FollowInterfaces(now);
                _client.EnsureRules(now);
                _client.ReregisterAll(now);
                break;
            case EngineEventKind.InterfaceDown:
                // The interface toward a router went away (its address with it): reach the router over another one of
                // its family and register from there; the router moves the rules to the new address.
                if (_client.Started && _client.FollowInterfaces(now))
                {
                    _client.ReregisterAll(now);
                }

                break;
        }
    }

    /// <inheritdoc/>
    public void Poll(TimeSpan now)
    {
        if (_engine.Counters.EventsDropped != _eventsDropped)
        {
            _eventsDropped = _engine.Counters.EventsDropped;
            Reconcile(now);
        }

        _client.Poll(now);
    }

    /// <inheritdoc/>
    public TimeSpan? NextTimeout(TimeSpan now) => _client.NextTimeout();

    /// <summary>Changes the weight routers give a bound prefix (sent at once). False when the prefix is not bound here.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="weight"/> is 0 or above 2³¹ − 1.</exception>
    public bool SetWeight(ServicePrefix prefix, uint weight, TimeSpan now)
    {
        ArgumentOutOfRangeException.ThrowIfZero(weight);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(weight, ControlProtocol.MaxWeight);
        if (!_local.ContainsKey(prefix))
        {
            return false;
        }

        _weights[prefix] = weight;
        Update(prefix, now);
        return true;
    }

    /// <summary>
    /// Asks the routers to stop (or resume) sending new connections to a bound prefix here; existing flows are not
    /// affected. False when the prefix is not bound here.
    /// </summary>
    public bool SetDraining(ServicePrefix prefix, bool draining, TimeSpan now)
    {
        if (!_local.ContainsKey(prefix))
        {
            return false;
        }

        if (draining)
        {
            _draining.Add(prefix);
        }
        else
        {
            _draining.Remove(prefix);
        }

        Update(prefix, now);
        return true;
    }

    /// <summary>
    /// Asks the routers where <paramref name="service"/> resolves (a Resolve message, docs/control-protocol.md §9):
    /// <paramref name="completion"/> is called on this thread, during a later <see cref="OnEvent"/> or <see cref="Poll"/>,
    /// with the answer — FORWARD targets for a prefix containing the service, or <see cref="ServiceResolution.NotFound"/>
    /// — or null when no router answered. False (and no call) when the controller is not started or too many queries
    /// are in progress.
    /// </summary>
    public bool Resolve(ServiceId service, TimeSpan now, Action<ServiceId, ServiceResolution?, TimeSpan> completion)
    {
        ArgumentNullException.ThrowIfNull(completion);
        return _client.Query(service, now, completion);
    }

    /// <summary>Sends every registration to every router again now.</summary>
    public void ReregisterAll(TimeSpan now) => _client.ReregisterAll(now);

    /// <summary>
    /// The engine's event queue overflowed, so an unbind may have been missed: withdraw every prefix the table no
    /// longer has a socket rule for.
    /// </summary>
    private void Reconcile(TimeSpan now)
    {
        foreach (var prefix in _local.Keys.ToList())
        {
            var bound = _engine.Services.TryGetExact(prefix, out var entry)
                && entry.Rules.Any(r => r.Target.Type == Services.ServiceTargetType.Demux && _local[prefix].ContainsKey(r.Target.Socket));
            if (!bound)
            {
                _local.Remove(prefix);
                _weights.Remove(prefix);
                _draining.Remove(prefix);
                _client.Withdraw(prefix, now);
            }
        }
    }

    private void OnBound(ServicePrefix prefix, SocketHandle socket, TransportProtocol protocol, TimeSpan now)
    {
        if (socket == _client.Socket || (_options.Filter is { } filter && !filter(prefix)) || IsRouterPrefix(prefix))
        {
            return;
        }

        if (!_local.TryGetValue(prefix, out var sockets))
        {
            sockets = [];
            _local.Add(prefix, sockets);
        }

        sockets[socket.Value] = protocol;
        Update(prefix, now);
    }

    private void OnUnbound(ServicePrefix prefix, SocketHandle socket, TimeSpan now)
    {
        if (!_local.TryGetValue(prefix, out var sockets) || !sockets.Remove(socket.Value))
        {
            return;
        }

        if (sockets.Count > 0)
        {
            Update(prefix, now);
            return;
        }

        _local.Remove(prefix);
        _weights.Remove(prefix);
        _draining.Remove(prefix);
        _client.Withdraw(prefix, now);
    }

    private void Update(ServicePrefix prefix, TimeSpan now)
    {
        var transports = ServiceTransports.None;
        foreach (var p in _local[prefix].Values)
        {
            transports |= p == TransportProtocol.Stream ? ServiceTransports.Stream : ServiceTransports.Datagram;
        }

        _client.Set(prefix, WeightOf(prefix), _draining.Contains(prefix), transports, now, _engine.FindServiceKey(prefix));
    }

    private uint WeightOf(ServicePrefix prefix) =>
        _weights.TryGetValue(prefix, out var w) ? w
        : _options.Weights is { } weights && weights.TryGetValue(prefix, out var c) ? c
        : _options.DefaultWeight;

    private bool IsRouterPrefix(ServicePrefix prefix) =>
        prefix.Length == ServiceId.Bits && _options.Routers.Any(r => r.ServiceId == prefix.Id);
}
