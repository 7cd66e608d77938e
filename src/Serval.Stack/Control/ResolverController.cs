using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// Answers DELAY rules (docs/protocol.md §7; docs/design.md, "on demand"): on
/// <see cref="EngineEventKind.PacketDelayed"/> it asks an <see cref="IServiceResolver"/>, installs FORWARD rules for
/// the answer and releases the packet, or drops it when there is no answer. Asynchronous resolvers answer
/// <see cref="ServiceResolution.Pending"/> and finish with <see cref="Complete"/>. Sans-I/O: see
/// <see cref="IEngineController"/> for how it is driven.
/// </summary>
/// <remarks>
/// A resolution is refused (and the packet dropped) when its prefix does not contain the service, a target is
/// invalid, or after installation the service still resolves to a DELAY rule (a more specific DELAY rule, or one
/// of higher priority) — releasing it would only delay it again.
/// </remarks>
public sealed class ResolverController : IEngineController
{
    private readonly Engine _engine;
    private readonly IServiceResolver _resolver;
    private readonly ResolverControllerOptions _options;
    private readonly Dictionary<ServiceId, PendingLookup> _pending = [];
    private readonly PriorityQueue<ServiceId, TimeSpan> _deadlines = new();

    /// <summary>Creates a resolver controller.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public ResolverController(Engine engine, IServiceResolver resolver, ResolverControllerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(resolver);
        _options = options ?? ResolverControllerOptions.Default;
        _options.Validate();
        _engine = engine;
        _resolver = resolver;
    }

    /// <summary>Counters.</summary>
    public ResolverControllerCounters Counters { get; } = new();

    /// <summary>Services awaiting an asynchronous answer.</summary>
    public int PendingCount => _pending.Count;

    /// <inheritdoc/>
    public void OnEvent(in EngineEvent engineEvent, TimeSpan now)
    {
        if (engineEvent.Kind != EngineEventKind.PacketDelayed)
        {
            return;
        }

        Counters.CountDelayed();
        var service = engineEvent.Prefix.Id;
        var id = engineEvent.DelayedPacketId;
        if (_pending.TryGetValue(service, out var waiting))
        {
            waiting.Packets.Add(id);
            Counters.CountPending();
            return;
        }

        var resolution = _resolver.Resolve(service, now);
        if (resolution is { IsPending: true })
        {
            if (_pending.Count >= _options.MaxPending)
            {
                Counters.CountUnresolved();
                Drop([id], now);
                return;
            }

            var deadline = now + _options.PendingLifetime;
            _pending.Add(service, new PendingLookup(deadline) { Packets = { id } });
            _deadlines.Enqueue(service, deadline);
            Counters.CountPending();
            return;
        }

        Apply(service, resolution, [id], now);
    }

    /// <summary>
    /// Delivers an asynchronous answer for <paramref name="service"/> (null: unresolvable): installs the rules and
    /// releases the waiting packets, or drops them. False when nothing waits for that service.
    /// </summary>
    public bool Complete(ServiceId service, ServiceResolution? resolution, TimeSpan now)
    {
        if (!_pending.Remove(service, out var waiting))
        {
            return false;
        }

        Apply(service, resolution is { IsPending: true } ? null : resolution, waiting.Packets, now);
        return true;
    }

    /// <inheritdoc/>
    public void Poll(TimeSpan now)
    {
        while (_deadlines.TryPeek(out var service, out var at) && at <= now)
        {
            _deadlines.Dequeue();
            if (_pending.TryGetValue(service, out var waiting) && waiting.Deadline <= now)
            {
                // The engine has expired the packets by now; forget them.
                _pending.Remove(service);
                Drop(waiting.Packets, now);
                Counters.CountExpired();
            }
        }
    }

    /// <inheritdoc/>
    public TimeSpan? NextTimeout(TimeSpan now) => _deadlines.TryPeek(out _, out var at) ? at : null;

    private void Apply(ServiceId service, ServiceResolution? resolution, List<long> packets, TimeSpan now)
    {
        if (resolution is null || resolution.Targets.Count == 0)
        {
            foreach (var _ in packets)
            {
                Counters.CountUnresolved();
            }

            Drop(packets, now);
            return;
        }

        if (!resolution.Prefix.Contains(service) || resolution.Lifetime <= TimeSpan.Zero)
        {
            Counters.CountInvalid();
            Drop(packets, now);
            return;
        }

        var services = _engine.Services;
        foreach (var t in resolution.Targets)
        {
            var r = services.Add(
                resolution.Prefix,
                ServiceTarget.Forward(t.Address, t.Interface),
                _options.Priority,
                t.Weight,
                hardTimeout: resolution.Lifetime,
                now: now);
            if (r is not (ServiceTableResult.Ok or ServiceTableResult.AlreadyExists))
            {
                Counters.CountInvalid();
            }
        }

        if (services.Lookup(service) is not { } entry || entry.TopSet.Rules.Any(rule => rule.Target.Type == ServiceTargetType.Delay))
        {
            Counters.CountInvalid();
            Drop(packets, now);
            return;
        }

        foreach (var id in packets)
        {
            if (_engine.ReleaseDelayed(id, now))
            {
                Counters.CountResolved();
            }
        }
    }

    private void Drop(List<long> packets, TimeSpan now)
    {
        foreach (var id in packets)
        {
            _engine.DropDelayed(id, now);
        }
    }

    private sealed class PendingLookup(TimeSpan deadline)
    {
        public TimeSpan Deadline { get; } = deadline;

        public List<long> Packets { get; } = [];
    }
}
