using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>
/// Updates: add, remove, modify, per-interface removal and expiry. One writer at a time, by contract: the engine's
/// thread owns the table (the runtime marshals every change there). Readers never wait. A second thread entering an
/// update while one is in progress gets an <see cref="InvalidOperationException"/> instead of a torn table.
/// </summary>
public sealed partial class ServiceTable
{
    /// <summary>Marks the calling thread as the writer (re-entrant) until the returned scope is disposed.</summary>
    private WriterScope EnterWriter()
    {
        var me = CrossThread.CurrentThreadId;
        if (CrossThread.Read(ref _writerThread) == me)
        {
            _writerDepth++;
            return new WriterScope(this);
        }

        if (CrossThread.CompareExchange(ref _writerThread, me, 0) != 0)
        {
            throw new InvalidOperationException("ServiceTable updates must come from one thread at a time (the engine's thread).");
        }

        _writerDepth = 1;
        return new WriterScope(this);
    }

    private readonly struct WriterScope(ServiceTable table) : IDisposable
    {
        public void Dispose()
        {
            if (--table._writerDepth == 0)
            {
                CrossThread.Write(ref table._writerThread, 0);
            }
        }
    }

    // Writer-side index (touched only by the single writer): prefixes with at least one rule that has a timeout.
    private readonly HashSet<ServicePrefix> _timed = [];

    /// <summary>
    /// Adds a rule: <paramref name="target"/> at <paramref name="priority"/> with <paramref name="weight"/> (0 means
    /// 1) to the entry of <paramref name="prefix"/>, creating the entry if needed.
    /// </summary>
    /// <param name="prefix">The serviceID prefix (0–256 bits).</param>
    /// <param name="target">The target; it must be <see cref="ServiceTarget.IsValid"/>.</param>
    /// <param name="priority">0 to <see cref="MaxPriority"/>; the highest priority set is the one used.</param>
    /// <param name="weight">0 to <see cref="MaxWeight"/>; 0 is stored as 1.</param>
    /// <param name="flags">Service flags stored with the rule.</param>
    /// <param name="idleTimeout">If set (positive), the rule expires after this long without a recorded resolution.</param>
    /// <param name="hardTimeout">If set (positive), the rule expires this long after <paramref name="now"/>.</param>
    /// <param name="now">The current monotonic time (starts the timeouts).</param>
    /// <returns>
    /// <see cref="ServiceTableResult.Ok"/>; <see cref="ServiceTableResult.AlreadyExists"/> when the entry holds a
    /// target with the same identity in any priority set; or the Invalid… result for the faulty argument.
    /// </returns>
    public ServiceTableResult Add(
        ServicePrefix prefix,
        ServiceTarget target,
        uint priority = DefaultPriority,
        uint weight = DefaultWeight,
        ServiceFlags flags = ServiceFlags.None,
        TimeSpan? idleTimeout = null,
        TimeSpan? hardTimeout = null,
        TimeSpan now = default)
    {
        if (!target.IsValid)
        {
            return ServiceTableResult.InvalidTarget;
        }

        if (priority > MaxPriority)
        {
            return ServiceTableResult.InvalidPriority;
        }

        if (weight > MaxWeight)
        {
            return ServiceTableResult.InvalidWeight;
        }

        if (idleTimeout <= TimeSpan.Zero || hardTimeout <= TimeSpan.Zero)
        {
            return ServiceTableResult.InvalidTimeout;
        }

        using (EnterWriter())
        {
            var version = _current;
            var old = PrefixTrie.Find(version.Root, prefix);
            if (old is not null && old.TryGetRule(target, out _))
            {
                return ServiceTableResult.AlreadyExists;
            }

            var rule = new ServiceRule(
                target,
                priority,
                weight == 0 ? 1 : weight,
                flags,
                idleTimeout,
                hardTimeout,
                now,
                new ServiceCounters(),
                old?.Counters ?? new ServiceCounters());
            var updated = old is null ? ServiceEntry.Create(prefix, rule) : old.WithRule(rule);
            var pending = new Pending(version);
            Replace(ref pending, prefix, old, updated);
            Publish(pending);
            return ServiceTableResult.Ok;
        }
    }

    /// <summary>
    /// Removes the rule of <paramref name="prefix"/>'s entry whose target has the identity of
    /// <paramref name="target"/> (any type: FORWARD by address and interface, DEMUX by socket, DELAY, DROP).
    /// Removing the last rule removes the entry.
    /// </summary>
    /// <returns><see cref="ServiceTableResult.Ok"/>, <see cref="ServiceTableResult.NotFound"/>, or <see cref="ServiceTableResult.InvalidTarget"/> when the target's identity fields are unusable.</returns>
    public ServiceTableResult Remove(ServicePrefix prefix, ServiceTarget target)
    {
        if (!target.HasValidIdentity)
        {
            return ServiceTableResult.InvalidTarget;
        }

        using (EnterWriter())
        {
            var version = _current;
            var old = PrefixTrie.Find(version.Root, prefix);
            if (old is null || !old.TryGetRule(target, out var rule))
            {
                return ServiceTableResult.NotFound;
            }

            var pending = new Pending(version);
            Replace(ref pending, prefix, old, old.Without(r => ReferenceEquals(r, rule)));
            Publish(pending);
            return ServiceTableResult.Ok;
        }
    }

    /// <summary>
    /// Changes the rule of <paramref name="prefix"/>'s entry whose target has the identity of
    /// <paramref name="target"/>. Only the values given change; everything else (including counters, timeouts and
    /// the time it was added) is kept. A rule whose priority changes moves to the end of its new set.
    /// </summary>
    /// <param name="prefix">The entry's exact prefix.</param>
    /// <param name="target">Names the rule (see <see cref="ServiceTarget.IsSameTarget"/>).</param>
    /// <param name="newAddress">FORWARD only: the new next-hop address (the interface stays).</param>
    /// <param name="priority">New priority, 0 to <see cref="MaxPriority"/>.</param>
    /// <param name="weight">New weight, 0 to <see cref="MaxWeight"/> (0 is stored as 1).</param>
    /// <param name="flags">New flags.</param>
    /// <returns>
    /// <see cref="ServiceTableResult.Ok"/> (also when nothing is given to change); <see cref="ServiceTableResult.NotFound"/>;
    /// <see cref="ServiceTableResult.AlreadyExists"/> when the new address makes it equal to another rule of the
    /// entry; or the Invalid… result for the faulty argument.
    /// </returns>
    public ServiceTableResult Modify(
        ServicePrefix prefix,
        ServiceTarget target,
        LinkAddress? newAddress = null,
        uint? priority = null,
        uint? weight = null,
        ServiceFlags? flags = null)
    {
        if (!target.HasValidIdentity)
        {
            return ServiceTableResult.InvalidTarget;
        }

        if (newAddress is { } address && (target.Type != ServiceTargetType.Forward || address.IsNone))
        {
            return ServiceTableResult.InvalidTarget;
        }

        if (priority > MaxPriority)
        {
            return ServiceTableResult.InvalidPriority;
        }

        if (weight > MaxWeight)
        {
            return ServiceTableResult.InvalidWeight;
        }

        using (EnterWriter())
        {
            var version = _current;
            var old = PrefixTrie.Find(version.Root, prefix);
            if (old is null || !old.TryGetRule(target, out var rule))
            {
                return ServiceTableResult.NotFound;
            }

            var newTarget = newAddress is { } a ? rule.Target with { Address = a } : rule.Target;
            if (!newTarget.IsSameTarget(rule.Target) && old.TryGetRule(newTarget, out _))
            {
                return ServiceTableResult.AlreadyExists;
            }

            var updatedRule = rule.With(
                newTarget,
                priority ?? rule.Priority,
                weight is { } w ? (w == 0 ? 1 : w) : rule.Weight,
                flags ?? rule.Flags);
            var pending = new Pending(version);
            Replace(ref pending, prefix, old, old.WithReplaced(rule, updatedRule));
            Publish(pending);
            return ServiceTableResult.Ok;
        }
    }

    /// <summary>
    /// Removes every FORWARD rule on interface <paramref name="interfaceIndex"/> (an interface went down),
    /// including the interface's default broadcast rule; entries left empty are removed. Scans every entry (an
    /// index would cost memory and time on every update for an event this rare); lookups are not held up.
    /// </summary>
    /// <returns>The number of rules removed.</returns>
    public int RemoveInterface(int interfaceIndex)
    {
        using (EnterWriter())
        {
            var pending = new Pending(_current);
            var affected = new List<ServiceEntry>();
            foreach (var entry in PrefixTrie.Enumerate(pending.Root))
            {
                foreach (var rule in entry.Rules)
                {
                    if (rule.Target.Type == ServiceTargetType.Forward && rule.Target.Interface == interfaceIndex)
                    {
                        affected.Add(entry);
                        break;
                    }
                }
            }

            var removed = 0;
            foreach (var old in affected)
            {
                var updated = old.Without(r => r.Target.Type == ServiceTargetType.Forward && r.Target.Interface == interfaceIndex);
                removed += old.RuleCount - (updated?.RuleCount ?? 0);
                Replace(ref pending, old.Prefix, old, updated);
            }

            if (removed > 0)
            {
                Publish(pending);
            }

            return removed;
        }
    }

    /// <summary>
    /// Removes every rule whose hard timeout (from when it was added) or idle timeout (from its last recorded
    /// resolution, or from when it was added if never used) has run out at <paramref name="now"/>. Entries left
    /// empty are removed.
    /// </summary>
    /// <param name="now">The current monotonic time.</param>
    /// <param name="expired">If given, receives one element per removed rule.</param>
    /// <returns>The number of rules removed.</returns>
    public int Expire(TimeSpan now, ICollection<ServiceExpiration>? expired = null)
    {
        using (EnterWriter())
        {
            if (_timed.Count == 0)
            {
                return 0;
            }

            Pending pending = new(_current);
            var removed = 0;
            var due = new List<ServiceRule>();
            foreach (var prefix in _timed.ToArray())
            {
                var old = PrefixTrie.Find(pending.Root, prefix)!;
                due.Clear();
                foreach (var rule in old.Rules)
                {
                    if (rule.ExpiredAt(now) is { } reason)
                    {
                        due.Add(rule);
                        expired?.Add(new ServiceExpiration(prefix, rule, reason));
                    }
                }

                if (due.Count > 0)
                {
                    removed += due.Count;
                    Replace(ref pending, prefix, old, old.Without(due.Contains));
                }
            }

            if (removed > 0)
            {
                Publish(pending);
            }

            return removed;
        }
    }

    /// <summary>
    /// The earliest time at which <see cref="Expire"/> would remove something, given the uses recorded so far (a
    /// later use can only push an idle deadline back); null when no rule has a timeout. A writer-side operation: call it
    /// from the thread that updates the table.
    /// </summary>
    public TimeSpan? NextExpiry
    {
        get
        {
            using (EnterWriter())
            {
                TimeSpan? next = null;
                foreach (var prefix in _timed)
                {
                    foreach (var rule in PrefixTrie.Find(_current.Root, prefix)!.Rules)
                    {
                        if (rule.ExpiresAt is { } at && (next is null || at < next.Value))
                        {
                            next = at;
                        }
                    }
                }

                return next;
            }
        }
    }

    /// <summary>Replaces <paramref name="old"/> (null: none) by <paramref name="updated"/> (null: remove) in every trie and the timer index.</summary>
    private void Replace(ref Pending pending, ServicePrefix prefix, ServiceEntry? old, ServiceEntry? updated)
    {
        pending.Root = updated is null ? PrefixTrie.Remove(pending.Root, prefix) : PrefixTrie.Set(pending.Root, updated);
        pending.Top = pending.Top.Update(pending.Root, prefix);
        pending.Count += (updated is null ? 0 : 1) - (old is null ? 0 : 1);
        pending.Tcp = ReplaceIn(pending.Tcp, prefix, old?.DemuxTcp is not null, updated?.DemuxTcp is not null ? updated : null);
        pending.Udp = ReplaceIn(pending.Udp, prefix, old?.DemuxUdp is not null, updated?.DemuxUdp is not null ? updated : null);
        pending.AnyDemux = ReplaceIn(pending.AnyDemux, prefix, old?.DemuxAny is not null, updated?.DemuxAny is not null ? updated : null);

        if (updated?.HasTimeouts == true)
        {
            _timed.Add(prefix);
        }
        else
        {
            _timed.Remove(prefix);
        }

        PrefixChanged?.Invoke(prefix);

        static TrieNode ReplaceIn(TrieNode root, ServicePrefix prefix, bool had, ServiceEntry? updated) =>
            updated is not null ? PrefixTrie.Set(root, updated) : had ? PrefixTrie.Remove(root, prefix) : root;
    }

    private void Publish(in Pending pending)
    {
        var previous = _current;
        CrossThread.Write(
            ref _current,
            new TableVersion(pending.Root, pending.Top, pending.Tcp, pending.Udp, pending.AnyDemux, pending.Count, previous.Number + 1));
    }

    /// <summary>The tries and count of the version being built.</summary>
    private struct Pending(TableVersion from)
    {
        public TrieNode Root = from.Root;
        public TopIndex Top = from.Top;
        public TrieNode Tcp = from.Tcp;
        public TrieNode Udp = from.Udp;
        public TrieNode AnyDemux = from.AnyDemux;
        public int Count = from.Count;
    }
}
