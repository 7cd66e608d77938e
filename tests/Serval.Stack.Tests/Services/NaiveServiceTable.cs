using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.Tests.Services;

/// <summary>
/// The obviously-correct service table the real one is checked against: a list of entries, each a list of rules
/// in joining order, searched linearly. It shares no code with the table (validation included).
/// </summary>
internal sealed class NaiveServiceTable
{
    private readonly List<Entry> _entries = [];

    public int Count => _entries.Count;

    public IEnumerable<ServicePrefix> Prefixes => _entries.Select(e => e.Prefix);

    public ServiceTableResult Add(ServicePrefix prefix, ServiceTarget target, uint priority, uint weight, TimeSpan? idle, TimeSpan? hard, TimeSpan now)
    {
        if (!WellFormed(target))
        {
            return ServiceTableResult.InvalidTarget;
        }

        if (priority > int.MaxValue)
        {
            return ServiceTableResult.InvalidPriority;
        }

        if (weight > int.MaxValue)
        {
            return ServiceTableResult.InvalidWeight;
        }

        if (idle <= TimeSpan.Zero || hard <= TimeSpan.Zero)
        {
            return ServiceTableResult.InvalidTimeout;
        }

        var entry = Find(prefix);
        if (entry is not null && entry.Rules.Any(r => Same(r.Target, target)))
        {
            return ServiceTableResult.AlreadyExists;
        }

        if (entry is null)
        {
            entry = new Entry(prefix);
            _entries.Add(entry);
        }

        entry.Rules.Add(new Rule(target, priority, weight == 0 ? 1 : weight, idle, hard, now));
        return ServiceTableResult.Ok;
    }

    public ServiceTableResult Remove(ServicePrefix prefix, ServiceTarget target)
    {
        if (!Nameable(target))
        {
            return ServiceTableResult.InvalidTarget;
        }

        var entry = Find(prefix);
        var rule = entry?.Rules.FirstOrDefault(r => Same(r.Target, target));
        if (rule is null)
        {
            return ServiceTableResult.NotFound;
        }

        entry!.Rules.Remove(rule);
        if (entry.Rules.Count == 0)
        {
            _entries.Remove(entry);
        }

        return ServiceTableResult.Ok;
    }

    public ServiceTableResult Modify(ServicePrefix prefix, ServiceTarget target, LinkAddress? newAddress, uint? priority, uint? weight)
    {
        if (!Nameable(target) || (newAddress.HasValue && (target.Type != ServiceTargetType.Forward || newAddress.Value.IsNone)))
        {
            return ServiceTableResult.InvalidTarget;
        }

        if (priority > int.MaxValue)
        {
            return ServiceTableResult.InvalidPriority;
        }

        if (weight > int.MaxValue)
        {
            return ServiceTableResult.InvalidWeight;
        }

        var entry = Find(prefix);
        var rule = entry?.Rules.FirstOrDefault(r => Same(r.Target, target));
        if (rule is null)
        {
            return ServiceTableResult.NotFound;
        }

        var newTarget = newAddress.HasValue ? rule.Target with { Address = newAddress.Value } : rule.Target;
        if (entry!.Rules.Any(r => r != rule && Same(r.Target, newTarget)))
        {
            return ServiceTableResult.AlreadyExists;
        }

        rule.Target = newTarget;
        if (weight.HasValue)
        {
            rule.Weight = weight.Value == 0 ? 1 : weight.Value;
        }

        if (priority.HasValue && priority.Value != rule.Priority)
        {
            // A rule that changes priority joins the end of its new set.
            rule.Priority = priority.Value;
            entry.Rules.Remove(rule);
            entry.Rules.Add(rule);
        }

        return ServiceTableResult.Ok;
    }

    public int RemoveInterface(int iface)
    {
        var removed = 0;
        foreach (var entry in _entries.ToList())
        {
            removed += entry.Rules.RemoveAll(r => r.Target.Type == ServiceTargetType.Forward && r.Target.Interface == iface);
            if (entry.Rules.Count == 0)
            {
                _entries.Remove(entry);
            }
        }

        return removed;
    }

    public List<(ServicePrefix Prefix, ServiceTarget Target)> Expire(TimeSpan now)
    {
        var expired = new List<(ServicePrefix, ServiceTarget)>();
        foreach (var entry in _entries.ToList())
        {
            foreach (var rule in entry.Rules.ToList())
            {
                var hard = rule.Hard.HasValue && now - rule.Added >= rule.Hard.Value;
                var idle = rule.Idle.HasValue && now - rule.LastUsed >= rule.Idle.Value;
                if (hard || idle)
                {
                    entry.Rules.Remove(rule);
                    expired.Add((entry.Prefix, rule.Target));
                }
            }

            if (entry.Rules.Count == 0)
            {
                _entries.Remove(entry);
            }
        }

        return expired;
    }

    public void Touch(ServicePrefix prefix, ServiceTarget target, TimeSpan now)
    {
        var rule = Find(prefix)!.Rules.First(r => Same(r.Target, target));
        if (now > rule.LastUsed)
        {
            rule.LastUsed = now;
        }
    }

    public Entry? Find(ServicePrefix prefix)
    {
        foreach (var entry in _entries)
        {
            if (entry.Prefix == prefix)
            {
                return entry;
            }
        }

        return null;
    }

    public Entry? Lookup(ServiceId id)
    {
        Entry? best = null;
        foreach (var entry in _entries)
        {
            if (entry.Prefix.Contains(id) && (best is null || entry.Prefix.Length > best.Prefix.Length))
            {
                best = entry;
            }
        }

        return best;
    }

    /// <summary>Longest prefix holding a DEMUX rule for the protocol (0 = any); the rule is the first such in priority order.</summary>
    public (Entry Entry, Rule Rule)? LookupDemux(ServiceId id, byte protocol)
    {
        if (protocol is not (0 or 6 or 17))
        {
            return null;
        }

        bool Fits(Rule r) => r.Target.Type == ServiceTargetType.Demux && (protocol == 0 || r.Target.Protocol == protocol);
        Entry? best = null;
        foreach (var entry in _entries)
        {
            if (entry.Prefix.Contains(id) && (best is null || entry.Prefix.Length > best.Prefix.Length) && entry.Rules.Exists(Fits))
            {
                best = entry;
            }
        }

        return best is null ? null : (best, best.Ordered.First(Fits));
    }

    private static bool Same(ServiceTarget a, ServiceTarget b) =>
        a.Type == b.Type && a.Type switch
        {
            ServiceTargetType.Forward => a.Address == b.Address && a.Interface == b.Interface,
            ServiceTargetType.Demux => a.Socket == b.Socket,
            _ => true,
        };

    private static bool WellFormed(ServiceTarget t) => t.Type switch
    {
        ServiceTargetType.Forward => !t.Address.IsNone && t.Interface >= 0 && t.Socket == 0 && t.Protocol == 0,
        ServiceTargetType.Demux => t.Socket != 0 && (t.Protocol == 6 || t.Protocol == 17) && t.Address.IsNone && t.Interface == 0,
        ServiceTargetType.Delay or ServiceTargetType.Drop => t.Address.IsNone && t.Interface == 0 && t.Socket == 0 && t.Protocol == 0,
        _ => false,
    };

    private static bool Nameable(ServiceTarget t) => t.Type switch
    {
        ServiceTargetType.Forward => !t.Address.IsNone,
        ServiceTargetType.Demux => t.Socket != 0,
        ServiceTargetType.Delay or ServiceTargetType.Drop => true,
        _ => false,
    };

    internal sealed class Entry(ServicePrefix prefix)
    {
        public ServicePrefix Prefix { get; } = prefix;

        /// <summary>Rules in joining order.</summary>
        public List<Rule> Rules { get; } = [];

        /// <summary>Rules highest priority first, joining order within a priority (a stable sort).</summary>
        public IEnumerable<Rule> Ordered => Rules.OrderByDescending(r => r.Priority);
    }

    internal sealed class Rule(ServiceTarget target, uint priority, uint weight, TimeSpan? idle, TimeSpan? hard, TimeSpan added)
    {
        public ServiceTarget Target { get; set; } = target;

        public uint Priority { get; set; } = priority;

        public uint Weight { get; set; } = weight;

        public TimeSpan? Idle { get; } = idle;

        public TimeSpan? Hard { get; } = hard;

        public TimeSpan Added { get; } = added;

        public TimeSpan LastUsed { get; set; } = added;
    }
}
