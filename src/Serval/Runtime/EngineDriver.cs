using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Runtime;

/// <summary>
/// Drives one <see cref="Stack.Engine"/> on one dedicated thread (docs/design.md, "The runtime"): take work from
/// applications, take packets from links, feed the engine, poll it, transmit, dispatch its events to socket state, and
/// sleep until the next timer, packet or request. Nothing else touches the engine, except the thread-safe
/// <see cref="ServiceTable"/> reads and <see cref="EngineCounters"/>.
/// </summary>
/// <remarks>
/// Why this type is large: it is the one owner of the engine's thread, so everything that must run there — the work
/// queue, links, the poll loop, event dispatch to socket state — meets here; the partial files split it by concern.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The metrics are disposed when the engine thread ends; the wake event outlives it for late signals.")]
internal sealed partial class EngineDriver : IPacketSink
{
    private const int InboundPerRound = 64;
    private const int WorkPerRound = 256;

    /// <summary>Bytes reserved in front of each received packet for the SOURCE extension a router inserts.</summary>
    private const int InboundHeadroom = 64;

    private LinkSlot[] _slots = [];
    private readonly ConcurrentQueue<IWorkItem> _work = new();
    private readonly ConcurrentQueue<InboundPacket> _inbound = new();
    private readonly ManualResetEventSlim _wake = new(false, 10);
    private readonly Thread _thread;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _startTimestamp = Stopwatch.GetTimestamp();
    private readonly int _inboundCapacity;
    private readonly InboundBufferPool _inboundBuffers;
    private readonly HostMetrics _metrics;
    private readonly List<Stack.ControlPlane.IEngineController> _controllers = [];
    private readonly ResolverBridge? _resolver;
    private readonly RegistrationPublisher? _publisher;
    private int _inboundCount;
    private int _signaled;
    private long _inboundDropped;
    private int _flowCount;
    private volatile bool _stopRequested;
    private volatile bool _closed;

    public EngineDriver(ServalHostOptions options)
    {
        Name = options.Name;
        Logger = options.LoggerFactory.CreateLogger("Serval.Host");
        Engine = new Engine(options.Engine, options.Random ?? CryptoRandomSource.Instance) { StreamOptions = options.Stream };
        _inboundCapacity = options.InboundQueueCapacity;
        _inboundBuffers = new InboundBufferPool(_inboundCapacity, Math.Min(_inboundCapacity, 4096));
        CreateMonitor(options);
        var links = new List<(ServalLink Link, bool Up)>(options.Links.Select(l => (l, true)));
        if (_monitor is { } monitor)
        {
            links.AddRange(monitor.CreateInitialLinks());
        }

        var now = Now;
        foreach (var (link, up) in links)
        {
            var index = Engine.AddInterface(InterfaceConfigFor(link));
            Debug.Assert(index == _slots.Length + 1, "interfaces are numbered in link order");
            _slots = [.. _slots, new LinkSlot(link, new Port(this, index)) { Up = up }];
            if (up)
            {
                Engine.SetInterfaceUp(index, true, now);
            }

            HostLog.LinkAttached(Logger, Name, index, link.Name, link.Mtu);
        }

        _defaultRouter = options.DefaultRouter;
        EnsureDefaultRouterRule();
        Interfaces = Engine.Interfaces;
        var random = options.Random ?? CryptoRandomSource.Instance;
        if (!options.RegisterWithRouter.IsNone || options.Registration.Routers.Count > 0)
        {
            // RegisterWithRouter comes first; routers already listed in Registration.Routers (with their interface) are kept.
            var routers = new List<Stack.ControlPlane.RouterEndpoint>();
            if (!options.RegisterWithRouter.IsNone)
            {
                // The interface follows the links (the controller picks an up one of the family when this one goes).
                routers.Add(new Stack.ControlPlane.RouterEndpoint(options.RegisterWithRouter, FirstLinkOf(options.RegisterWithRouter.Family) + 1));
            }

            routers.AddRange(options.Registration.Routers.Where(r => !routers.Any(x => x.Address == r.Address && x.ServiceId == r.ServiceId)));
            var registration = options.Registration with { Routers = routers };
            _controllers.Add(new Stack.ControlPlane.HostController(Engine, registration, random));
        }

        if (options.RouterControl is { } routerOptions)
        {
            var router = new Stack.ControlPlane.RouterController(Engine, routerOptions, random);
            if (options.RouterRegistry is { } registry)
            {
                router.Registry = registry;
                RouterRegistry = registry;
                registry.Attach(Signal);
            }
            router.RegistrationEvent = OnRegistrationEvent;
            if (options.PublishRegistrations is { } publish)
            {
                _publisher = new RegistrationPublisher(publish, Logger, Name);
                router.RegistrationRuleChanged = _publisher.OnChange;
            }

            _controllers.Add(router);
            if (options.RouterAdvertisement is { } advertisement)
            {
                _controllers.Add(new Stack.ControlPlane.RouterAdvertiser(Engine, router, advertisement, random));
            }
        }
        else if (options.RouterDiscovery is { } discovery && options.RegisterWithRouter.IsNone && options.Registration.Routers.Count == 0 && options.DefaultRouter.IsNone)
        {
            // No router configured: register with the routers the links hear (docs/control-protocol.md §12).
            // A registration key also authenticates the advertisements unless discovery has its own.
            var keyed = discovery.Key.IsEmpty && !options.Registration.Key.IsEmpty ? discovery with { Key = options.Registration.Key } : discovery;
            _controllers.Add(new Stack.ControlPlane.RouterDiscoveryController(Engine, keyed, options.Registration, random)
            {
                RouterChanged = (router, found) =>
                {
                    if (found)
                    {
                        HostLog.RouterDiscovered(Logger, Name, router.Address);
                    }
                    else
                    {
                        HostLog.RouterLost(Logger, Name, router.Address);
                    }
                },
            });
        }

        if (options.Resolver is { } resolver)
        {
            // On-demand resolution (docs/resolution.md): a default DELAY rule, answered by the resolver's sources.
            _resolver = new ResolverBridge(this, resolver);
            _controllers.Add(new Stack.ControlPlane.ResolverController(Engine, _resolver, resolver.Controller));
            if (resolver.InstallDelayRule)
            {
                Engine.Services.Add(ServicePrefix.Default, ServiceTarget.Delay(), resolver.DelayPriority, 1, now: now);
            }
        }

        _metrics = new HostMetrics(Name, this, options.MeterFactory);
        _thread = new Thread(Run) { IsBackground = true, Name = $"serval engine {Name}" };
    }

    public string Name { get; }

    public ILogger Logger { get; }

    /// <summary>How logs name services (with the names the host was told, where known).</summary>
    public ServiceLabels ServiceLabels { get; } = new();

    /// <summary>The engine: engine thread only (except <see cref="Engine.Services"/> and <see cref="Engine.Counters"/>).</summary>
    public Engine Engine { get; }

    public EngineCounters Counters => Engine.Counters;

    public IReadOnlyList<InterfaceInfo> Interfaces { get; }

    /// <summary>The links by interface (index = interface − 1), retired ones included until their index is reused (any thread).</summary>
    public IReadOnlyList<ServalLink> Links => [.. Volatile.Read(ref _slots).Select(s => s.Link)];

    public HostMetrics Metrics => _metrics;

    /// <summary>Socket state by engine handle (engine thread only).</summary>
    public Dictionary<long, SocketState> Sockets { get; } = [];

    /// <summary>The engine's clock: monotonic time since the driver was created.</summary>
    public TimeSpan Now => Stopwatch.GetElapsedTime(_startTimestamp);

    public long InboundDropped => Volatile.Read(ref _inboundDropped);

    /// <summary>The engine's flow count as of the end of the last round (readable from any thread).</summary>
    public int FlowCountSnapshot => Volatile.Read(ref _flowCount);

    public bool IsClosed => _closed;

    public Task Stopped => _stopped.Task;

    /// <summary>A FORWARD target to <paramref name="nextHop"/> on the first (not retired) link of its address family.</summary>
    public ServiceTarget ForwardTarget(LinkAddress nextHop)
    {
        var i = FirstLinkOf(nextHop.Family);
        return i >= 0
            ? ServiceTarget.Forward(nextHop, i + 1)
            : throw new ArgumentException($"No link has the address family of {nextHop}.", nameof(nextHop));
    }

    /// <summary>The index of the first link of <paramref name="family"/> that is not retired, preferring one that is up; -1 if none.</summary>
    private int FirstLinkOf(System.Net.Sockets.AddressFamily family)
    {
        var slots = Volatile.Read(ref _slots);
        var any = -1;
        for (var i = 0; i < slots.Length; i++)
        {
            if (!slots[i].Retired && slots[i].Link.LocalAddress.Family == family)
            {
                if (slots[i].Up)
                {
                    return i;
                }

                any = any < 0 ? i : any;
            }
        }

        return any;
    }

    private static InterfaceConfig InterfaceConfigFor(ServalLink link) => new()
    {
        Name = link.Name,
        Address = link.LocalAddress,
        Broadcast = link.BroadcastAddress,
        Mtu = link.Mtu,
        RewritesSource = link.RewritesSource,
    };

    public void Start()
    {
        foreach (var slot in _slots)
        {
            slot.Link.AttachLogger(Logger);
            slot.Link.Start(slot.Port);
        }

        StartMonitor();
        _thread.Start();
        HostLog.HostStarted(Logger, Name, _slots.Length, Engine.Options.Mode);
    }

    // ------------------------------------------------------------------------------------------------------------
    // Crossing into the engine thread

    /// <summary>Queues <paramref name="item"/> for the engine thread; abandons it at once if the host has stopped.</summary>
    public void Post(IWorkItem item)
    {
        _work.Enqueue(item);
        if (_closed)
        {
            DrainAbandoned();
            return;
        }

        Signal();
    }

    /// <summary>Runs <paramref name="function"/> on the engine thread.</summary>
    public Task<T> InvokeAsync<T>(Func<EngineDriver, T> function)
    {
        var item = new FuncWorkItem<T>(function);
        Post(item);
        return item.Completion.Task;
    }

    private void Signal()
    {
        if (Interlocked.Exchange(ref _signaled, 1) == 0)
        {
            _wake.Set();
        }
    }

    private void OnReceived(int iface, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        if (_closed || Interlocked.Increment(ref _inboundCount) > _inboundCapacity)
        {
            if (!_closed)
            {
                Interlocked.Decrement(ref _inboundCount);
                if ((Interlocked.Increment(ref _inboundDropped) & 1023) == 1)
                {
                    HostLog.InboundDropped(Logger, Name, InboundDropped);
                }
            }

            return;
        }

        // Headroom in front of the packet: a service router forwards a first packet in this buffer (docs/runtime.md).
        var buffer = _inboundBuffers.Rent(InboundHeadroom + packet.Length);
        packet.CopyTo(buffer.AsSpan(InboundHeadroom));
        _inbound.Enqueue(new InboundPacket(iface, source, destination, buffer, packet.Length, hopLimit));
        Signal();
    }

    // ------------------------------------------------------------------------------------------------------------
    // The engine thread

    private void Run()
    {
        try
        {
            StartControllers();
            while (!_stopRequested)
            {
                // Reset the event before clearing the flag: a signal that finds the flag clear then sets the event
                // after this reset (the other order loses that wake-up and the thread sleeps up to a second with
                // packets queued).
                _wake.Reset();
                Volatile.Write(ref _signaled, 0);
                var busy = RunWork();
                busy |= RunInbound();
                Pump();
                if (busy || !_work.IsEmpty || !_inbound.IsEmpty)
                {
                    continue;
                }

                var now = Now;
                var next = Engine.NextTimeout(now);
                foreach (var controller in _controllers)
                {
                    if (controller.NextTimeout(now) is { } c && (next is null || c < next))
                    {
                        next = c;
                    }
                }

                var wait = next is { } at ? Math.Clamp((int)Math.Ceiling((at - now).TotalMilliseconds), 0, 1000) : 1000;
                if (wait > 0)
                {
                    _wake.Wait(wait);
                }
            }
        }
        catch (Exception e)
        {
            HostLog.EngineThreadFailed(Logger, e, Name);
        }
        finally
        {
            Shutdown();
        }
    }

    private bool RunWork()
    {
        var n = 0;
        while (n < WorkPerRound && _work.TryDequeue(out var item))
        {
            n++;
            item.Execute(this);
        }

        return n == WorkPerRound;
    }

    private bool RunInbound()
    {
        var total = 0;
        for (var round = 0; round < 16; round++)
        {
            var n = 0;
            var now = Now;
            while (n < InboundPerRound && _inbound.TryDequeue(out var p))
            {
                n++;
                Interlocked.Decrement(ref _inboundCount);
                try
                {
                    Engine.Receive(p.Interface, p.Source, p.Destination, p.Buffer, InboundHeadroom, p.Length, p.HopLimit, now, this);
                }
                catch (Exception e)
                {
                    OnDriverFault("receive", e);
                }
                finally
                {
                    _inboundBuffers.Return(p.Buffer);
                }
            }

            total += n;
            if (n < InboundPerRound)
            {
                break;
            }

            Pump();
        }

        return total >= InboundPerRound * 16;
    }

    /// <summary>Polls, transmits and dispatches events until the engine has nothing more to say right now.</summary>
    private void Pump()
    {
        for (var i = 0; i < 16; i++)
        {
            foreach (var controller in _controllers)
            {
                try
                {
                    controller.Poll(Now);
                }
                catch (Exception e)
                {
                    OnDriverFault(controller.GetType().Name, e);
                }
            }

            try
            {
                Engine.Poll(Now, this);
            }
            catch (Exception e)
            {
                OnDriverFault("poll", e);
            }

            LogFaults();
            foreach (var slot in _slots)
            {
                if (!slot.Retired)
                {
                    slot.Link.Flush();
                }
            }

            if (!DispatchEvents())
            {
                break;
            }
        }

        Volatile.Write(ref _flowCount, Engine.FlowCount);
        _connectContexts.Clear();
    }

    // The spans of the connects made in this round, by service: a resolution they start is their child.
    private readonly Dictionary<ServiceId, ActivityContext> _connectContexts = [];

    /// <summary>Engine thread: a connect to <paramref name="service"/> is being made within the span <paramref name="context"/>.</summary>
    public void NoteConnectContext(ServiceId service, ActivityContext context)
    {
        if (context != default)
        {
            _connectContexts[service] = context;
        }
    }

    /// <summary>Engine thread: the span of a connect to <paramref name="service"/> made in this round, if any.</summary>
    public ActivityContext ConnectContextOf(ServiceId service) => _connectContexts.GetValueOrDefault(service);

    private bool DispatchEvents()
    {
        var any = false;
        while (Engine.TryGetEvent(out var e))
        {
            any = true;
            if (Logger.IsEnabled(LogLevel.Debug))
            {
                HostLog.EngineEvent(Logger, Name, e.Kind, e.Socket.Value, e.Error);
            }

            try
            {
                if (!e.Socket.IsNone && Sockets.TryGetValue(e.Socket.Value, out var state))
                {
                    state.OnEvent(this, e);
                }

                if (e.Kind is EngineEventKind.InterfaceUp or EngineEventKind.InterfaceDown)
                {
                    EnsureDefaultRouterRule();
                }

                LogLifecycle(e);

                foreach (var controller in _controllers)
                {
                    controller.OnEvent(e, Now);
                }

            }
            catch (Exception ex)
            {
                OnDriverFault($"event {e.Kind}", ex);
            }
        }

        return any;
    }

    // Flows this host is moving (socket handle → flowID and service), from the start of their migration to its end.
    private readonly Dictionary<long, (FlowId Flow, ServiceId Service)> _migrating = [];

    /// <summary>Engine thread: logs links going up or down and the end of migrations.</summary>
    private void LogLifecycle(in EngineEvent e)
    {
        switch (e.Kind)
        {
            case EngineEventKind.InterfaceUp or EngineEventKind.InterfaceDown when e.Interface > 0 && e.Interface <= _slots.Length:
                var link = _slots[e.Interface - 1].Link.Name;
                if (e.Kind == EngineEventKind.InterfaceUp)
                {
                    HostLog.LinkUp(Logger, Name, e.Interface, link);
                }
                else
                {
                    HostLog.LinkDown(Logger, Name, e.Interface, link);
                    NoteMigrations(); // the engine moves the link's flows elsewhere (AutoMigrate)
                }

                break;
            case EngineEventKind.Migrated when _migrating.Remove(e.Socket.Value) | Logger.IsEnabled(LogLevel.Information):
                if (Engine.GetFlow(e.Socket) is { } flow)
                {
                    HostLog.MigrationCompleted(Logger, Name, flow.LocalFlow, new ServiceLabel(ServiceLabels, flow.Service), flow.Interface, flow.PeerAddress);
                }

                break;
            case EngineEventKind.Closed when _migrating.Remove(e.Socket.Value, out var failed):
                if (e.Error is ServalError.MigrationFailed or ServalError.NetworkDown or ServalError.TimedOut)
                {
                    HostLog.MigrationFailed(Logger, Name, failed.Flow, new ServiceLabel(ServiceLabels, failed.Service), e.Error);
                }

                break;
        }
    }

    /// <summary>Engine thread: logs the migrations this host started since the last call (by the API, or by the engine when a link went down).</summary>
    public void NoteMigrations()
    {
        foreach (var f in Engine.GetFlows())
        {
            if (f.Migration is MigrationState.RsynSent or MigrationState.RsynSentReceived && _migrating.TryAdd(f.Socket.Value, (f.LocalFlow, f.Service)))
            {
                HostLog.MigrationStarted(Logger, Name, f.LocalFlow, new ServiceLabel(ServiceLabels, f.Service), f.PeerAddress, f.Interface);
            }
        }
    }

    /// <summary>Engine thread: a registration event of the router controller, logged.</summary>
    private void OnRegistrationEvent(Stack.ControlPlane.RouterRegistrationEvent e)
    {
        var service = ServiceLabels.Of(e.Prefix);
        var host = e.Host.ToString();
        switch (e.Kind)
        {
            case Stack.ControlPlane.RouterRegistrationEventKind.Added:
                HostLog.RegistrationAdded(Logger, Name, service, host, e.Weight);
                break;
            case Stack.ControlPlane.RouterRegistrationEventKind.Refreshed:
                HostLog.RegistrationRefreshed(Logger, Name, service, host);
                break;
            case Stack.ControlPlane.RouterRegistrationEventKind.Expired:
                HostLog.RegistrationExpired(Logger, Name, service, host);
                break;
            case Stack.ControlPlane.RouterRegistrationEventKind.Withdrawn:
                HostLog.RegistrationWithdrawn(Logger, Name, service, host);
                break;
            case Stack.ControlPlane.RouterRegistrationEventKind.DrainStarted:
                HostLog.DrainStarted(Logger, Name, service, host, e.ByRouter ? "router" : "host");
                break;
            case Stack.ControlPlane.RouterRegistrationEventKind.DrainEnded:
                HostLog.DrainFinished(Logger, Name, service, host, e.ByRouter ? "router" : "host");
                break;
        }
    }

    /// <summary>Logs the faults the engine charged to flows (each flow was reset; the host goes on).</summary>
    private void LogFaults()
    {
        while (Engine.TryGetFault(out var f) && f is not null)
        {
            HostLog.FlowFault(Logger, f.Exception, Name, f.Where, f.LocalFlow.ToString(), f.PeerFlow.ToString(), f.PeerAddress.ToString(), f.Service.ToString(), f.Socket.Value);
        }
    }

    /// <summary>An exception outside any one flow (a controller, an event handler): counted and logged, the host goes on.</summary>
    internal void OnDriverFault(string where, Exception e)
    {
        Interlocked.Increment(ref _driverFaults);
        HostLog.DriverFault(Logger, e, Name, where);
    }

    private long _driverFaults;

    /// <summary>Exceptions outside any one flow that the engine thread survived.</summary>
    public long DriverFaults => Interlocked.Read(ref _driverFaults);

    private void StartControllers()
    {
        var now = Now;
        foreach (var controller in _controllers)
        {
            var error = controller switch
            {
                Stack.ControlPlane.HostController h => h.Start(now),
                Stack.ControlPlane.RouterController r => r.Start(now),
                Stack.ControlPlane.RouterAdvertiser a => a.Start(now),
                Stack.ControlPlane.RouterDiscoveryController d => d.Start(now),
                _ => ServalError.None,
            };
            if (error != ServalError.None)
            {
                throw new InvalidOperationException($"The Serval host '{Name}' could not start its {controller.GetType().Name}: {error}.");
            }
        }

        Pump();
    }

    /// <summary>The host's registration controller, if any (engine thread only).</summary>
    internal Stack.ControlPlane.HostController? HostController => _controllers.OfType<Stack.ControlPlane.HostController>().FirstOrDefault();

    /// <summary>The host's resolver controller, if any (engine thread only).</summary>
    internal Stack.ControlPlane.ResolverController? ResolverController => _resolver?.Controller;

    /// <summary>The DNS publisher of the router's registrations, if any.</summary>
    internal RegistrationPublisher? Publisher => _publisher;

    /// <summary>The host's router discovery controller, if any (engine thread only).</summary>
    internal Stack.ControlPlane.RouterDiscoveryController? RouterDiscovery => _controllers.OfType<Stack.ControlPlane.RouterDiscoveryController>().FirstOrDefault();

    /// <summary>The host's router advertiser, if any (engine thread only).</summary>
    internal Stack.ControlPlane.RouterAdvertiser? RouterAdvertiser => _controllers.OfType<Stack.ControlPlane.RouterAdvertiser>().FirstOrDefault();

    /// <summary>The host's router controller, if any (engine thread only).</summary>
    /// <summary>The fleet registry of the router controller, or null.</summary>
    internal Stack.ControlPlane.IRouterRegistry? RouterRegistry { get; private set; }

    internal Stack.ControlPlane.RouterController? RouterController => _controllers.OfType<Stack.ControlPlane.RouterController>().FirstOrDefault();

    void IPacketSink.Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        var slots = _slots;
        if ((uint)(interfaceIndex - 1) < (uint)slots.Length && slots[interfaceIndex - 1] is { Retired: false } slot)
        {
            slot.Link.Send(source, destination, packet, hopLimit);
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Stopping

    public Task StopAsync()
    {
        _stopRequested = true;
        _wake.Set();
        if (!_thread.IsAlive && _thread.ThreadState == System.Threading.ThreadState.Unstarted)
        {
            Shutdown();
        }

        return _stopped.Task;
    }

    private void Shutdown()
    {
        var reason = new ObjectDisposedException(nameof(ServalHost), $"The Serval host '{Name}' has stopped.");
        try
        {
            // Tell peers: reset open connections, release bound services, withdraw registrations.
            var now = Now;
            foreach (var state in Sockets.Values.ToList())
            {
                state.OnHostStopped(this, reason);
            }

            DispatchEvents();
            foreach (var controller in _controllers)
            {
                switch (controller)
                {
                    case Stack.ControlPlane.HostController h:
                        h.Stop(now);
                        break;
                    case Stack.ControlPlane.RouterController r:
                        r.Stop(now);
                        break;
                    case Stack.ControlPlane.RouterAdvertiser a:
                        a.Stop(now);
                        break;
                    case Stack.ControlPlane.RouterDiscoveryController d:
                        d.Stop(now);
                        break;
                }
            }

            Sockets.Clear();
            Engine.Poll(now, this);
            foreach (var slot in _slots)
            {
                if (!slot.Retired)
                {
                    slot.Link.Flush();
                }
            }
        }
        catch (Exception e)
        {
            HostLog.EngineThreadFailed(Logger, e, Name);
        }

        _closed = true;
        _resolver?.Dispose();
        if (_publisher is not null)
        {
            _publisher.Stop(_publisher.InSync ? TimeSpan.Zero : TimeSpan.FromSeconds(2)); // withdraw the records (best effort)
            _publisher.Dispose();
        }

        _monitor?.Dispose();
        DrainAbandoned();
        foreach (var slot in _slots)
        {
            if (slot.Retired)
            {
                continue; // disposed by its retirement
            }

            try
            {
                slot.Link.Dispose();
            }
            catch (Exception e)
            {
                HostLog.LinkReceiveFailed(Logger, e, slot.Link.Name);
            }
        }

        WaitForRetiredLinks();

        while (_inbound.TryDequeue(out var p))
        {
            _inboundBuffers.Return(p.Buffer);
        }

        _metrics.Dispose();
        HostLog.HostStopped(Logger, Name);
        _stopped.TrySetResult();
    }

    private void DrainAbandoned()
    {
        var reason = new ObjectDisposedException(nameof(ServalHost), $"The Serval host '{Name}' has stopped.");
        while (_work.TryDequeue(out var item))
        {
            item.Abandon(reason);
        }
    }

    /// <summary>The receiver a link delivers to: tags packets with the link's interface index (none once the link is retired).</summary>
    private sealed class Port(EngineDriver driver, int iface) : ILinkReceiver
    {
        private volatile bool _retired;

        public void Retire() => _retired = true;

        public void Receive(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
        {
            if (!_retired)
            {
                driver.OnReceived(iface, source, destination, packet, hopLimit);
            }
        }
    }
}
