using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// One Serval host's protocol engine (docs/design.md, "The engine"): interfaces, the service table, the flow table, the SAL
/// (handshake, control channel, close/reset, service-router forwarding, migration) and the transports. Sans-I/O and
/// single-threaded: packets come in through <see cref="Receive(int, LinkAddress, LinkAddress, ReadOnlySpan{byte}, int, TimeSpan)"/>, go out through <see cref="Poll"/> into an
/// <see cref="IPacketSink"/>, <see cref="NextTimeout"/> says when to poll again, and every time is the caller's
/// <c>now</c>. Socket operations are plain calls that never block and never throw for network conditions.
/// </summary>
/// <remarks>
/// <para>Not thread-safe, except <see cref="Services"/> lookups and <see cref="Counters"/> reads.</para>
/// <para><b>Why this type is large.</b> It is the SAL of docs/protocol.md §§5–10: interfaces, demultiplexing, the service
/// table's use, sockets and events, and the packet exchanges between those (handshake, close, migration, SYN cookies,
/// TIME-WAIT, relaying) that need all of them at once. What has state of its own is a type of its own — a flow's control
/// channel (<see cref="ControlChannel"/>, with the RTT estimator), the timer table (<see cref="FlowTimerTable"/>), the
/// stream transport (<see cref="Streams.StreamConnection"/>), the service table — and the partial files split the rest by
/// concern (docs/engine.md, "Structure").</para>
/// </remarks>
public sealed partial class Engine
{
    private const int ScratchSize = 65_536 + 1024;

    private readonly EngineOptions _options;
    private readonly IRandomSource _random;
    private readonly List<EngineInterface> _interfaces = [];
    private readonly Dictionary<uint, Flow> _flows = [];
    private readonly Dictionary<long, SocketBase> _sockets = [];
    private readonly Queue<Outbound> _outbound = new();
    private readonly Queue<Outbound> _loopback = new();
    private readonly Queue<EngineEvent> _events = new();
    private readonly FlowTimerTable _timers;
    private readonly HashSet<Flow> _transmitPending = [];
    private readonly List<Flow> _transmitScratch = [];
    private readonly byte[] _scratch = new byte[ScratchSize];
    private readonly byte[] _payloadScratch = new byte[ScratchSize];
    private readonly byte[] _sealScratch = new byte[ScratchSize];
    private readonly byte[] _plainScratch = new byte[ScratchSize];
    private long _nextHandle = 1;

    // The packet being received through the writable-buffer Receive overload (null otherwise): its buffer and offset,
    // where its payload ends, the pseudo-header its transport checksum verified with, and the sink for in-place
    // forwarding (docs/engine.md, "Forwarding in place").
    private byte[]? _rxBuffer;
    private int _rxOffset;
    private int _rxEnd;
    private TransportPseudoHeader _rxPseudo;
    private IPacketSink? _rxSink;
    private TimeSpan _now;

    /// <summary>Creates an engine with its loopback interface (index 0).</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public Engine(EngineOptions options, IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        _options = options;
        _random = random;
        _timers = new FlowTimerTable(_flows);
        Services.PrefixChanged = OnPrefixChanged;
        _interfaces.Add(new EngineInterface(0, new InterfaceConfig { Name = "lo", Address = LinkAddress.Parse("127.0.0.1"), Mtu = 65_000 })
        {
            IsUp = true,
            IsLoopback = true,
        });
    }

    /// <summary>The settings this engine runs with.</summary>
    public EngineOptions Options => _options;

    /// <summary>The service table (lookups are safe from any thread).</summary>
    public ServiceTable Services { get; } = new();

    /// <summary>Engine-wide counters.</summary>
    public EngineCounters Counters { get; } = new();

    /// <summary>Number of live flows (connections, pending requests, closing flows).</summary>
    public int FlowCount => _flows.Count + _timeWait.Count;

    /// <summary>The last <c>now</c> the engine saw.</summary>
    public TimeSpan Now => _now;

    // ----------------------------------------------------------------------------------------------------------
    // Interfaces

    /// <summary>
    /// Adds an interface (down until <see cref="SetInterfaceUp"/>); returns its index: the lowest index of an interface
    /// removed with <see cref="RemoveInterface"/> that no flow refers to any more (neither as its interface nor as its
    /// migration target, nor a TIME-WAIT record), else the next new one (1, 2, …).
    /// </summary>
    /// <exception cref="ArgumentException">The address is missing or the MTU too small for a SAL SYN.</exception>
    public int AddInterface(InterfaceConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Address.IsNone)
        {
            throw new ArgumentException("An interface needs an address.", nameof(config));
        }

        if (config.Mtu < 256)
        {
            throw new ArgumentException($"Interface MTU {config.Mtu} is below the 256 bytes a SAL SYN needs.", nameof(config));
        }

        for (var i = 1; i < _interfaces.Count; i++)
        {
            if (_interfaces[i].IsRemoved && !IsInterfaceReferenced(i))
            {
                _interfaces[i] = new EngineInterface(i, config);
                return i;
            }
        }

        var iface = new EngineInterface(_interfaces.Count, config);
        _interfaces.Add(iface);
        return iface.Index;
    }

    /// <summary>Whether a flow or a TIME-WAIT record still refers to interface <paramref name="index"/>.</summary>
    private bool IsInterfaceReferenced(int index)
    {
        foreach (var flow in _flows.Values)
        {
            if (flow.Interface == index || flow.MigrationInterface == index)
            {
                return true;
            }
        }

        foreach (var e in _timeWait.Values)
        {
            if (e.Interface == index)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Removes an interface for good (its link and address are gone): it goes down as with
    /// <see cref="SetInterfaceUp"/> (FORWARD rules removed, flows moved or left waiting for a usable interface) and can
    /// no longer come up; <see cref="AddInterface"/> reuses its index once no flow refers to it. Removing a removed
    /// interface does nothing.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">No such interface.</exception>
    /// <exception cref="ArgumentException">The interface is the loopback interface (index 0).</exception>
    public void RemoveInterface(int index, TimeSpan now)
    {
        _now = now;
        var iface = GetInterface(index);
        if (iface.IsLoopback)
        {
            throw new ArgumentException("The loopback interface cannot be removed.", nameof(index));
        }

        if (iface.IsRemoved)
        {
            return;
        }

        iface.IsRemoved = true;
        SetDown(iface, now);
    }

    /// <summary>
    /// Brings an interface up (installing its broadcast default rule) or down (removing its FORWARD rules). With
    /// <see cref="EngineOptions.AutoMigrate"/>, flows left without a usable path move to the first up interface of
    /// their peer's address family (docs/migration-model.md, "Flows without a path"): on down, those of this
    /// interface (and those moving to it); on up, those waiting for an interface.
    /// </summary>
    /// <exception cref="InvalidOperationException">The interface was removed (<see cref="RemoveInterface"/>) and cannot come up.</exception>
    public void SetInterfaceUp(int index, bool up, TimeSpan now)
    {
        _now = now;
        var iface = GetInterface(index);
        if (iface.IsUp == up || iface.IsLoopback)
        {
            return;
        }

        if (up)
        {
            if (iface.IsRemoved)
            {
                throw new InvalidOperationException($"Interface {index} was removed and cannot come up; add a new interface.");
            }

            iface.IsUp = true;
            if (!iface.Broadcast.IsNone)
            {
                Services.Add(ServicePrefix.Default, ServiceTarget.Forward(iface.Broadcast, index), ServiceTable.BroadcastPriority, ServiceTable.BroadcastWeight, now: now);
            }

            Emit(new EngineEvent(EngineEventKind.InterfaceUp, Interface: index));
            RescueFlows(now);
        }
        else
        {
            SetDown(iface, now);
        }
    }

    private void SetDown(EngineInterface iface, TimeSpan now)
    {
        if (!iface.IsUp)
        {
            return;
        }

        iface.IsUp = false;
        Services.RemoveInterface(iface.Index);
        Emit(new EngineEvent(EngineEventKind.InterfaceDown, Interface: iface.Index));
        RescueFlows(now);
    }

    /// <summary>
    /// Changes an interface's address (flows using the old address keep it until they migrate). With
    /// <see cref="EngineOptions.AutoMigrate"/>, flows on the old address move to the new one. A migration already
    /// moving onto this interface sent its RSYN from the old address, where the answer can no longer arrive: its RSYN
    /// leaves again at once from the new address, with its retransmission timer and backoff started afresh.
    /// </summary>
    public void SetInterfaceAddress(int index, LinkAddress address, TimeSpan now)
    {
        _now = now;
        if (address.IsNone)
        {
            throw new ArgumentException("An interface needs an address.", nameof(address));
        }

        var iface = GetInterface(index);
        var old = iface.Address;
        iface.Address = address;
        Emit(new EngineEvent(EngineEventKind.AddressChanged, Interface: index));
        if (!iface.IsUp || old == address)
        {
            return;
        }

        // Taken before any new migration starts below: those send their RSYN from the new address already.
        var moving = _flows.Values.Where(f => f.MigrationInterface == index && IsRsynOutstanding(f) && !(f.Interface == index && f.LocalAddress == old)).ToList();
        if (_options.AutoMigrate)
        {
            // Flows on the old address move to the new one with an RSYN from it.
            foreach (var flow in _flows.Values.Where(f => f.Interface == index && f.LocalAddress == old && f.IsSynchronized && f.State != SalState.TimeWait).ToList())
            {
                if (flow.PeerAddress.Family == address.Family)
                {
                    StartMigration(flow, iface, now);
                }
            }
        }

        foreach (var flow in moving)
        {
            flow.Control.Resend(now);
            SendControlOnly(flow, flow.Control.Flags, flow.Control.Verno);
            Schedule(flow);
        }
    }

    /// <summary>Whether the flow's own RSYN is sent and not yet answered.</summary>
    private static bool IsRsynOutstanding(Flow flow) =>
        flow.State != SalState.Closed && flow.Migration is MigrationState.RsynSent or MigrationState.RsynSentReceived
        && flow.Control.Holds(SalControlFlags.Rsyn);

    /// <summary>A snapshot of every interface, loopback (index 0) first.</summary>
    public IReadOnlyList<InterfaceInfo> Interfaces =>
        [.. _interfaces.Select(i => new InterfaceInfo(i.Index, i.Name, i.Address, i.Broadcast, i.Mtu, i.IsUp))];

    private EngineInterface GetInterface(int index) =>
        (uint)index < (uint)_interfaces.Count
            ? _interfaces[index]
            : throw new ArgumentOutOfRangeException(nameof(index), index, "No such interface.");

    private bool TryGetUpInterface(int index, [NotNullWhen(true)] out EngineInterface? iface)
    {
        iface = (uint)index < (uint)_interfaces.Count ? _interfaces[index] : null;
        return iface is { IsUp: true };
    }

    // ----------------------------------------------------------------------------------------------------------
    // Events

    /// <summary>Takes the next event for the driver or controller.</summary>
    public bool TryGetEvent(out EngineEvent engineEvent) => _events.TryDequeue(out engineEvent);

    private void Emit(EngineEvent e)
    {
        if (_events.Count >= _options.EventQueueCapacity)
        {
            _events.Dequeue();
            Counters.EventDropped();
        }

        _events.Enqueue(e);
    }

    // ----------------------------------------------------------------------------------------------------------
    // Polling

    /// <summary>
    /// Runs expired timers and transport output, then hands every queued packet to <paramref name="sink"/>.
    /// Call after <see cref="Receive(int, LinkAddress, LinkAddress, ReadOnlySpan{byte}, int, TimeSpan)"/>, after socket operations, and when <see cref="NextTimeout"/> is reached.
    /// </summary>
    public void Poll(TimeSpan now, IPacketSink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        _now = now;
        for (var round = 0; round < 64; round++)
        {
            RunTimers(now);
            ReleaseResolvable(now);
            ExpireDelayed(now);
            ResendHeldRelays(now);
            FlushTransports(now);
            var moved = false;
            while (_loopback.TryDequeue(out var lo))
            {
                moved = true;
                try
                {
                    Receive(0, lo.Source, lo.Destination, lo.Buffer.AsSpan(0, lo.Length), lo.HopLimit, now);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(lo.Buffer);
                }
            }

            while (_outbound.TryDequeue(out var o))
            {
                try
                {
                    sink.Send(o.Interface, o.Source, o.Destination, o.Buffer.AsSpan(0, o.Length), o.HopLimit);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(o.Buffer);
                }
            }

            if (!moved && _transmitPending.Count == 0)
            {
                break;
            }
        }
    }

    /// <summary>
    /// When the engine next needs <see cref="Poll"/> without new input: <paramref name="now"/> when work is queued,
    /// otherwise the earliest timer, or null when nothing is scheduled.
    /// </summary>
    public TimeSpan? NextTimeout(TimeSpan now)
    {
        if (_outbound.Count > 0 || _loopback.Count > 0 || _transmitPending.Count > 0)
        {
            return now;
        }

        var next = _timers.Earliest();

        if (_changedPrefixes.Count > 0 || _recheckAllDelayed || _recheckRelays)
        {
            return now; // held packets to re-check against the changed rules
        }

        if (_delayedByExpiry.First is { } first)
        {
            var d = first.Value.ExpiresAt;
            next = next is null || d < next ? d : next;
        }

        if (NextTimeWaitExpiry() is { } tw)
        {
            next = next is null || tw < next ? tw : next;
        }

        var expiry = Services.NextExpiry;
        if (expiry is { } e)
        {
            next = next is null || e < next ? e : next;
        }

        return next;
    }

    private readonly record struct Outbound(int Interface, LinkAddress Source, LinkAddress Destination, byte[] Buffer, int Length, int HopLimit);

    /// <summary>
    /// Queues a built packet for the interface (or the loopback queue); <paramref name="hopLimit"/> is the IP TTL /
    /// hop limit it must leave with (<see cref="IPHopLimit.Unknown"/>: the link's default).
    /// </summary>
    private void Transmit(int iface, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit = IPHopLimit.Unknown)
    {
        var buf = ArrayPool<byte>.Shared.Rent(packet.Length);
        packet.CopyTo(buf);
        var o = new Outbound(iface, source, destination, buf, packet.Length, hopLimit);
        if (iface == 0)
        {
            _loopback.Enqueue(o);
        }
        else
        {
            _outbound.Enqueue(o);
        }

        Counters.Sent(packet.Length);
    }

    /// <summary>Emits <paramref name="repr"/> with <paramref name="payload"/> from <paramref name="source"/> to <paramref name="destination"/>.</summary>
    private int Send(int iface, LinkAddress source, LinkAddress destination, in SalPacketRepr repr, ReadOnlySpan<byte> payload, int hopLimit = IPHopLimit.Unknown)
    {
        var n = repr.Emit(_scratch, payload, TransportPseudoHeader.ForLink(source, destination));
        if (n > 0)
        {
            Transmit(iface, source, destination, _scratch.AsSpan(0, n), hopLimit);
        }

        return n;
    }

    /// <summary>
    /// Emits a packet of <paramref name="flow"/>: sealed (AUTH extension, docs/security.md) once the flow has keys,
    /// otherwise as <see cref="Send"/> does.
    /// </summary>
    private int SendFlowPacket(Flow flow, int iface, LinkAddress source, LinkAddress destination, in SalPacketRepr repr, ReadOnlySpan<byte> payload)
    {
        if (flow.Security is not { Established: true } security)
        {
            return Send(iface, source, destination, repr, payload);
        }

        var n = security.Seal(_scratch, repr, payload, TransportPseudoHeader.ForLink(source, destination), _sealScratch);
        if (n > 0)
        {
            Transmit(iface, source, destination, _scratch.AsSpan(0, n));
        }

        return n;
    }

    // ----------------------------------------------------------------------------------------------------------
    // Identifiers

    private SocketHandle NewHandle() => new(_nextHandle++);

    /// <summary>A random non-zero flowID unused by any live flow or socket (docs/protocol.md §4: ours, not sequential).</summary>
    private FlowId NewFlowId()
    {
        while (true)
        {
            var v = _random.NextUInt32();
            if (v != 0 && !_flows.ContainsKey(v) && !_datagramFlowIds.Contains(v) && !_timeWait.ContainsKey(v))
            {
                return new FlowId(v);
            }
        }
    }

    private Nonce NewNonce() => new(_random.NextUInt64());

    private readonly HashSet<uint> _datagramFlowIds = [];
}
