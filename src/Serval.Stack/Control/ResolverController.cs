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
/// <para>
/// The cache: a positive answer is kept as its installed rules, which expire with the answer's lifetime (the
/// service table removes them); at most <see cref="ResolverControllerOptions.MaxAnswers"/> answers are installed, the
/// oldest removed first. A negative answer (<see cref="ServiceResolution.NotFound"/>) is remembered for its lifetime,
/// at most <see cref="ResolverControllerOptions.NegativeLifetime"/>, for at most
/// <see cref="ResolverControllerOptions.MaxNegative"/> serviceIDs. A failure (null) is not remembered.
/// </para>
/// <para>
/// A resolution is refused (and the packet dropped) when its prefix does not contain the service, a target is
/// invalid, or after installation the service still resolves to a DELAY rule (a more specific DELAY rule, or one
/// of higher priority) — releasing it would only delay it again. Rules installed for a prefix also release, through the
/// engine, every other packet held under that prefix (docs/service-table.md, "DELAY").
/// </para>
/// </remarks>
public sealed class ResolverController : IEngineController
{
    private readonly Engine _engine;
    private readonly IServiceResolver _resolver;
    private readonly ResolverControllerOptions _options;
    private readonly Dictionary<ServiceId, PendingLookup> _pending = [];
    private readonly PriorityQueue<ServiceId, TimeSpan> _deadlines = new();
    private readonly Dictionary<ServicePrefix, InstalledAnswer> _answers = [];
    private readonly LinkedList<InstalledAnswer> _answerOrder = new();
    private readonly Dictionary<ServiceId, TimeSpan> _negative = [];
    private readonly Queue<(ServiceId Service, TimeSpan Until)> _negativeOrder = new();

    /// <summary>Creates a resolver controller; a <see cref="IDeferredServiceResolver"/> is attached to it.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public ResolverController(Engine engine, IServiceResolver resolver, ResolverControllerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(resolver);
        _options = options ?? ResolverControllerOptions.Default;
        _options.Validate();
        _engine = engine;
        _resolver = resolver;
        (resolver as IDeferredServiceResolver)?.Attach(this);
    }

    /// <summary>The settings.</summary>
    public ResolverControllerOptions Options => _options;

    /// <summary>Counters.</summary>
    public ResolverControllerCounters Counters { get; } = new();

    /// <summary>Services awaiting an asynchronous answer.</summary>
    public int PendingCount => _pending.Count;

    /// <summary>Answers whose rules are installed (some may have expired from the table since).</summary>
    public int AnswerCount => _answers.Count;

    /// <summary>Negative answers remembered (some may have run out since).</summary>
    public int NegativeCount => _negative.Count;

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

        if (_negative.TryGetValue(service, out var until))
        {
            if (until > now)
            {
                Counters.CountNegativeHits();
                Drop([id], now);
                return;
            }

            _negative.Remove(service);
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
    /// Delivers an asynchronous answer for <paramref name="service"/> (null: the lookup failed;
    /// <see cref="ServiceResolution.NotFound"/>: there is no such service): installs the rules and releases the waiting
    /// packets, or drops them. False when nothing waits for that service.
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

    /// <summary>
    /// Forgets every answer: removes the rules installed for positive answers and the remembered negative answers (for
    /// example when the resolver's data changed). Lookups in progress continue. Returns the number of answers forgotten.
    /// </summary>
    public int Flush(TimeSpan now)
    {
        var n = _answers.Count + _negative.Count;
        foreach (var answer in _answerOrder)
        {
            RemoveRules(answer.Prefix, answer.Targets);
        }

        _answers.Clear();
        _answerOrder.Clear();
        _negative.Clear();
        _negativeOrder.Clear();
        return n;
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

            if (resolution is not null)
            {
                RememberNegative(service, resolution.Lifetime, now);
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

        _negative.Remove(service);
        Install(resolution, now);
        var services = _engine.Services;
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

    /// <summary>Installs the rules of an answer, replacing those of an earlier answer for the same prefix, and keeps the cache bounded.</summary>
    private void Install(ServiceResolution resolution, TimeSpan now)
    {
        var targets = new List<ServiceTarget>(resolution.Targets.Count);
        foreach (var t in resolution.Targets)
        {
            var target = ServiceTarget.Forward(t.Address, t.Interface);
            var r = _engine.Services.Add(resolution.Prefix, target, _options.Priority, t.Weight, hardTimeout: resolution.Lifetime, now: now);
            if (r is ServiceTableResult.Ok or ServiceTableResult.AlreadyExists)
            {
                targets.Add(target);
            }
            else
            {
                Counters.CountInvalid();
            }
        }

        if (_answers.Remove(resolution.Prefix, out var previous))
        {
            _answerOrder.Remove(previous.Node!);
            RemoveRules(previous.Prefix, previous.Targets.Where(t => !targets.Contains(t)));
        }

        var answer = new InstalledAnswer(resolution.Prefix, targets);
        answer.Node = _answerOrder.AddLast(answer);
        _answers.Add(answer.Prefix, answer);
        while (_answers.Count > _options.MaxAnswers && _answerOrder.First is { } oldest)
        {
            _answerOrder.RemoveFirst();
            _answers.Remove(oldest.Value.Prefix);
            RemoveRules(oldest.Value.Prefix, oldest.Value.Targets);
            Counters.CountEvicted();
        }
    }

    /// <summary>Removes rules this controller installed (those at its priority: a rule added by someone else at another priority stays).</summary>
    private void RemoveRules(ServicePrefix prefix, IEnumerable<ServiceTarget> targets)
    {
        foreach (var target in targets)
        {
            if (_engine.Services.TryGetExact(prefix, out var entry) && entry.TryGetRule(target, out var rule) && rule.Priority == _options.Priority)
            {
                _engine.Services.Remove(prefix, target);
            }
        }
    }

    private void RememberNegative(ServiceId service, TimeSpan? lifetime, TimeSpan now)
    {
        var keep = lifetime is { } l && l < _options.NegativeLifetime ? l : _options.NegativeLifetime;
        if (keep <= TimeSpan.Zero)
        {
            return;
        }

        var until = now + keep;
        _negative[service] = until;
        _negativeOrder.Enqueue((service, until));
        while (_negativeOrder.Count > _options.MaxNegative || (_negativeOrder.TryPeek(out var head) && head.Until <= now))
        {
            var (s, u) = _negativeOrder.Dequeue();
            if (_negative.TryGetValue(s, out var current) && current == u)
            {
                _negative.Remove(s);
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

    private sealed class InstalledAnswer(ServicePrefix prefix, List<ServiceTarget> targets)
    {
        public ServicePrefix Prefix { get; } = prefix;

        public List<ServiceTarget> Targets { get; } = targets;

        public LinkedListNode<InstalledAnswer>? Node { get; set; }
    }
}
