using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// The router side of router discovery (docs/control-protocol.md §12): a service router announces itself on every
/// link that has a broadcast (IPv4) or discovery multicast (IPv6) address — a RouterAdvertise to
/// <see cref="ControlProtocol.AdvertiseServiceId"/> carrying the router's serviceID, epoch and a lifetime — every
/// <see cref="RouterAdvertiserOptions.Interval"/>, and early (rate limited) when a host solicits one or an interface
/// comes up. Hosts running a <see cref="RouterDiscoveryController"/> register with it. Sans-I/O, driven like the other
/// controllers (<see cref="IEngineController"/>); it runs next to the <see cref="RouterController"/> it announces.
/// </summary>
public sealed class RouterAdvertiser : IEngineController
{
    private readonly Engine _engine;
    private readonly RouterController _router;
    private readonly RouterAdvertiserOptions _options;
    private readonly ulong _sender;
    private readonly byte[] _receive = new byte[ControlProtocol.MaxMessageLength + 1];
    private readonly byte[] _send = new byte[ControlProtocol.AuthenticatedLength];
    private TokenBucket _early;
    private SocketHandle _socket;
    private TimeSpan _dueAt;
    private uint _sequence;

    /// <summary>Creates an advertiser for <paramref name="router"/>'s serviceID, epoch and key; nothing is sent until <see cref="Start"/>.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public RouterAdvertiser(Engine engine, RouterController router, RouterAdvertiserOptions options, IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(router);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        _engine = engine;
        _router = router;
        _options = options;
        ulong sender;
        do
        {
            sender = random.NextUInt64();
        }
        while (sender == 0);
        _sender = sender;
    }

    /// <summary>The settings.</summary>
    public RouterAdvertiserOptions Options => _options;

    /// <summary>Counters.</summary>
    public RouterAdvertiserCounters Counters { get; } = new();

    /// <summary>Binds the solicitation serviceID and advertises at once.</summary>
    /// <returns>The engine's error if the socket cannot be bound (another socket has the serviceID).</returns>
    public ServalError Start(TimeSpan now)
    {
        if (!_socket.IsNone)
        {
            return ServalError.None;
        }

        var error = _engine.BindDatagram(ServicePrefix.Exact(ControlProtocol.SolicitServiceId), now, out _socket);
        if (error == ServalError.None)
        {
            _dueAt = now;
            Poll(now);
        }

        return error;
    }

    /// <summary>Closes the socket; hosts forget the router when the last advertisement's lifetime ends.</summary>
    public void Stop(TimeSpan now)
    {
        if (!_socket.IsNone)
        {
            _engine.Close(_socket, now);
            _socket = SocketHandle.None;
        }
    }

    /// <inheritdoc/>
    public void OnEvent(in EngineEvent engineEvent, TimeSpan now)
    {
        if (_socket.IsNone)
        {
            return;
        }

        switch (engineEvent.Kind)
        {
            case EngineEventKind.Readable when engineEvent.Socket == _socket:
                Drain(now);
                break;
            case EngineEventKind.InterfaceUp:
            case EngineEventKind.AddressChanged:
                AdvertiseEarly(now);
                break;
        }

        if (now >= _dueAt)
        {
            Poll(now);
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
        if (now < _dueAt)
        {
            return;
        }

        _dueAt = now + _options.Interval;
        var message = new ControlMessage
        {
            Type = ControlMessageType.RouterAdvertise,
            Sender = _sender,
            Sequence = ++_sequence,
            Epoch = _router.Epoch,
            Timestamp = (ulong)Math.Max(0, (long)now.TotalMilliseconds),
            LeaseMilliseconds = (uint)_options.Lifetime.TotalMilliseconds,
            Prefix = ServicePrefix.Exact(_router.Options.ServiceId),
        };
        var n = message.Emit(_send, _router.Options.Key.Span);
        foreach (var iface in LinkBroadcast.Interfaces(_engine).ToList())
        {
            if (LinkBroadcast.Send(_engine, _socket, ControlProtocol.AdvertiseServiceId, iface, _send.AsSpan(0, n), now) == ServalError.None)
            {
                Counters.CountAdvertisementSent();
            }
            else
            {
                Counters.CountSendFailure();
            }
        }
    }

    /// <inheritdoc/>
    public TimeSpan? NextTimeout(TimeSpan now) => _socket.IsNone ? null : _dueAt;

    private void AdvertiseEarly(TimeSpan now)
    {
        if (_dueAt > now)
        {
            if (_early.TryTake(_options.SolicitedRate, now))
            {
                _dueAt = now;
            }
            else
            {
                Counters.CountRateLimited();
            }
        }
    }

    private void Drain(TimeSpan now)
    {
        // At most a bounded number per call: a flood waits in the socket's queue (bounded by the engine) instead of
        // holding the engine thread.
        for (var i = 0; i < 256 && _engine.ReceiveFrom(_socket, _receive, out var n, out _, out _) == ServalError.None; i++)
        {
            var data = _receive.AsSpan(0, n);
            if (!ControlMessage.TryParse(data, out var m, out _) || m.Type != ControlMessageType.RouterSolicit)
            {
                Counters.CountMalformed();
                continue;
            }

            var key = _router.Options.Key.Span;
            if (!key.IsEmpty && !(m.IsAuthenticated && ControlMessageView.TryCreate(data, out var view, out _) && view.VerifyMac(key)))
            {
                Counters.CountUnauthenticated();
                continue;
            }

            Counters.CountSolicitation();
            AdvertiseEarly(now);
        }
    }
}
