using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// The host side of router discovery (docs/control-protocol.md §12): with no router configured, the host listens for
/// RouterAdvertise messages on <see cref="ControlProtocol.AdvertiseServiceId"/> (link broadcast or discovery
/// multicast), solicits them at start and when an interface comes up, and registers its bound services with every
/// router it hears — through one <see cref="HostController"/> per router, exactly as with a configured one (default
/// rule toward the router, registration, refresh, unregistration). A router not heard from within its advertised
/// lifetime is forgotten: its controller stops (its rules go), and the router's lease on the registrations lapses.
/// Bounded: at most <see cref="RouterDiscoveryOptions.MaxRouters"/> routers, at most
/// <see cref="RouterDiscoveryOptions.AdvertisementRate"/> advertisements processed a second, malformed ones counted
/// and dropped. Sans-I/O, driven like the other controllers (<see cref="IEngineController"/>).
/// </summary>
/// <remarks>
/// Hand it every engine event from the start: it keeps the set of bound prefixes so that a router discovered later
/// gets all of them. Not thread-safe; call it on the engine's thread. <see cref="Counters"/> may be read from any thread.
/// </remarks>
public sealed class RouterDiscoveryController : IEngineController
{
    private readonly Engine _engine;
    private readonly RouterDiscoveryOptions _options;
    private readonly HostControllerOptions _registration;
    private readonly IRandomSource _random;
    private readonly ulong _sender;
    private readonly Dictionary<(ServicePrefix Prefix, long Socket), TransportProtocol> _bound = [];
    private readonly Dictionary<(LinkAddress Address, ServiceId Service), Known> _routers = [];
    private readonly byte[] _receive = new byte[ControlProtocol.MaxMessageLength + 1];
    private readonly byte[] _send = new byte[ControlProtocol.AuthenticatedLength];
    private TokenBucket _bucket;
    private SocketHandle _socket;
    private bool _enabled;
    private int _solicitsLeft;
    private TimeSpan _solicitAt;
    private uint _sequence;

    /// <summary>
    /// Creates a discovery controller; <paramref name="registration"/> are the settings of the registrations with the
    /// routers it finds (its <see cref="HostControllerOptions.Routers"/> are ignored: each router gets its own).
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public RouterDiscoveryController(Engine engine, RouterDiscoveryOptions options, HostControllerOptions registration, IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(registration);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        registration.Validate();
        _engine = engine;
        _options = options;
        var filter = registration.Filter;
        _registration = registration with
        {
            Routers = [],
            Filter = p => !IsDiscoveryPrefix(p) && (filter is null || filter(p)),
        };
        _random = random;
        ulong sender;
        do
        {
            sender = random.NextUInt64();
        }
        while (sender == 0);
        _sender = sender;
    }

    /// <summary>The settings.</summary>
    public RouterDiscoveryOptions Options => _options;

    /// <summary>Counters.</summary>
    public RouterDiscoveryCounters Counters { get; } = new();

    /// <summary>The socket advertisements arrive on (<see cref="SocketHandle.None"/> until started).</summary>
    public SocketHandle Socket => _socket;

    /// <summary>Whether the controller listens for advertisements (started, and a link with a broadcast address was up).</summary>
    public bool Started => !_socket.IsNone;

    /// <summary>
    /// Starts discovery: as soon as an interface with a broadcast (or discovery multicast) address is up — now, or when
    /// one comes up — binds the advertisement serviceID and solicits advertisements on every such link. A host without
    /// such a link binds nothing.
    /// </summary>
    /// <returns>The engine's error if the socket cannot be bound (another socket has the serviceID).</returns>
    public ServalError Start(TimeSpan now)
    {
        _enabled = true;
        return Bind(now);
    }

    private ServalError Bind(TimeSpan now)
    {
        if (Started || !_enabled || !LinkBroadcast.Interfaces(_engine).Any())
        {
            return ServalError.None;
        }

        var error = _engine.BindDatagram(ServicePrefix.Exact(ControlProtocol.AdvertiseServiceId), now, out _socket);
        if (error == ServalError.None)
        {
            ScheduleSolicits(now);
            Poll(now);
        }

        return error;
    }

    /// <summary>Stops every per-router registration (one Unregister each, not retried) and closes the socket.</summary>
    public void Stop(TimeSpan now)
    {
        foreach (var known in _routers.Values)
        {
            known.Controller.Stop(now);
        }

        _routers.Clear();
        _enabled = false;
        if (Started)
        {
            _engine.Close(_socket, now);
            _socket = SocketHandle.None;
        }
    }

    /// <summary>A router was discovered (true) or lost when its advertised lifetime lapsed (false); for logs.</summary>
    public Action<RouterEndpoint, bool>? RouterChanged { get; set; }

    /// <summary>The routers known now.</summary>
    public IReadOnlyList<DiscoveredRouter> GetRouters() =>
        [.. _routers.Values.Select(k => new DiscoveredRouter(
            k.Controller.GetRouters()[0].Endpoint,
            k.Epoch,
            k.DiscoveredAt,
            k.ExpiresAt,
            k.Controller.GetRegistrations().Count(r => r.AcknowledgedBy > 0)))];

    /// <summary>The per-router registration controllers (for their counters and registrations).</summary>
    public IReadOnlyList<HostController> GetControllers() => [.. _routers.Values.Select(k => k.Controller)];

    /// <inheritdoc/>
    public void OnEvent(in EngineEvent engineEvent, TimeSpan now)
    {
        switch (engineEvent.Kind)
        {
            case EngineEventKind.ServiceRegistered when engineEvent.Socket != _socket:
                _bound[(engineEvent.Prefix, engineEvent.Socket.Value)] = engineEvent.Protocol;
                break;
            case EngineEventKind.ServiceUnregistered:
                _bound.Remove((engineEvent.Prefix, engineEvent.Socket.Value));
                break;
            case EngineEventKind.InterfaceUp when !Started:
                Bind(now);
                break;
            case EngineEventKind.InterfaceUp when _routers.Count == 0:
                ScheduleSolicits(now);
                break;
        }

        foreach (var known in _routers.Values.ToList())
        {
            known.Controller.OnEvent(engineEvent, now);
        }

        if (Started && engineEvent.Kind == EngineEventKind.Readable && engineEvent.Socket == _socket)
        {
            Drain(now);
        }
    }

    /// <inheritdoc/>
    public void Poll(TimeSpan now)
    {
        if (!Started)
        {
            return;
        }

        Drain(now);
        foreach (var (key, known) in _routers.ToList())
        {
            if (known.ExpiresAt <= now)
            {
                _routers.Remove(key);
                var lost = known.Controller.GetRouters()[0].Endpoint;
                known.Controller.Stop(now);
                Counters.CountExpired();
                RouterChanged?.Invoke(lost, false);
                if (_routers.Count == 0)
                {
                    ScheduleSolicits(now);
                }
            }
            else
            {
                known.Controller.Poll(now);
            }
        }

        if (_solicitsLeft > 0 && now >= _solicitAt)
        {
            if (_routers.Count > 0)
            {
                _solicitsLeft = 0;
            }
            else
            {
                Solicit(now);
                _solicitsLeft--;
                _solicitAt = now + _options.SolicitInterval;
            }
        }
    }

    /// <inheritdoc/>
    public TimeSpan? NextTimeout(TimeSpan now)
    {
        if (!Started)
        {
            return null;
        }

        TimeSpan? next = _solicitsLeft > 0 ? _solicitAt : null;
        foreach (var known in _routers.Values)
        {
            next = Min(next, known.ExpiresAt);
            next = Min(next, known.Controller.NextTimeout(now));
        }

        return next;
    }

    private static TimeSpan? Min(TimeSpan? a, TimeSpan? b) => a is null ? b : b is null ? a : a < b ? a : b;

    private static bool IsDiscoveryPrefix(ServicePrefix p) =>
        p.Length == ServiceId.Bits && (p.Id == ControlProtocol.AdvertiseServiceId || p.Id == ControlProtocol.SolicitServiceId);

    private void ScheduleSolicits(TimeSpan now)
    {
        _solicitsLeft = _options.SolicitAttempts;
        _solicitAt = now;
    }

    private void Solicit(TimeSpan now)
    {
        var message = new ControlMessage
        {
            Type = ControlMessageType.RouterSolicit,
            Sender = _sender,
            Sequence = ++_sequence,
        };
        var n = message.Emit(_send, _options.Key.Span);
        foreach (var iface in LinkBroadcast.Interfaces(_engine).ToList())
        {
            if (LinkBroadcast.Send(_engine, _socket, ControlProtocol.SolicitServiceId, iface, _send.AsSpan(0, n), now) == ServalError.None)
            {
                Counters.CountSolicitationSent();
            }
        }
    }

    private void Drain(TimeSpan now)
    {
        for (var i = 0; i < 256 && _engine.ReceiveFrom(_socket, _receive, out var n, out _, out var source) == ServalError.None; i++)
        {
            if (!_bucket.TryTake(_options.AdvertisementRate, now))
            {
                Counters.CountRateLimited();
                continue;
            }

            OnAdvertisement(_receive.AsSpan(0, n), source, now);
        }
    }

    private void OnAdvertisement(ReadOnlySpan<byte> data, LinkAddress source, TimeSpan now)
    {
        if (!ControlMessage.TryParse(data, out var m, out _) || m.Type != ControlMessageType.RouterAdvertise || source.IsNone)
        {
            Counters.CountMalformed();
            return;
        }

        var key = _options.Key.Span;
        if (!key.IsEmpty && !(m.IsAuthenticated && ControlMessageView.TryCreate(data, out var view, out _) && view.VerifyMac(key)))
        {
            Counters.CountUnauthenticated();
            return;
        }

        Counters.CountAdvertisement();
        var lifetime = m.Lease < _options.MinLifetime ? _options.MinLifetime : m.Lease > _options.MaxLifetime ? _options.MaxLifetime : m.Lease;
        var id = (source, m.Prefix.Id);
        if (_routers.TryGetValue(id, out var known))
        {
            known.ExpiresAt = now + lifetime;
            if (known.Epoch != m.Epoch)
            {
                // The router restarted: it lost every registration; send them again now rather than at the next refresh.
                known.Epoch = m.Epoch;
                known.Controller.ReregisterAll(now);
            }

            return;
        }

        if (_routers.Count >= _options.MaxRouters)
        {
            Counters.CountRefused();
            return;
        }

        var endpoint = new RouterEndpoint(source, LinkBroadcast.InterfaceToward(_engine, source), m.Prefix.Id);
        var controller = new HostController(_engine, _registration with { Routers = [endpoint] }, _random);
        if (controller.Start(now) != ServalError.None)
        {
            return;
        }

        _routers.Add(id, new Known(controller, m.Epoch, now, now + lifetime));
        Counters.CountDiscovered();
        RouterChanged?.Invoke(endpoint, true);
        _solicitsLeft = 0;
        foreach (var ((prefix, socket), protocol) in _bound)
        {
            controller.OnEvent(new EngineEvent(EngineEventKind.ServiceRegistered, new SocketHandle(socket), prefix, protocol), now);
        }
    }

    private sealed class Known(HostController controller, ulong epoch, TimeSpan discoveredAt, TimeSpan expiresAt)
    {
        public HostController Controller { get; } = controller;

        public ulong Epoch { get; set; } = epoch;

        public TimeSpan DiscoveredAt { get; } = discoveredAt;

        public TimeSpan ExpiresAt { get; set; } = expiresAt;
    }
}
