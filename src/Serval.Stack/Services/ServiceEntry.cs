using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>
/// The rules of one service prefix, grouped in priority sets (highest priority first). Immutable: every update
/// publishes a new entry object that shares <see cref="Counters"/> with the one it replaces. An entry always
/// holds at least one rule; the table removes an entry when its last rule goes.
/// </summary>
public sealed class ServiceEntry
{
    private ServiceEntry(ServicePrefix prefix, ImmutableArray<ServicePrioritySet> sets, ServiceCounters counters)
    {
        Prefix = prefix;
        Sets = sets;
        TopSet = sets[0];
        Counters = counters;
        var count = 0;
        foreach (var set in sets)
        {
            foreach (var rule in set.Rules)
            {
                count++;
                if (rule.Target.Type == ServiceTargetType.Demux)
                {
                    // Sets are in priority order, so the first DEMUX of each protocol is the preferred one.
                    DemuxAny ??= rule;
                    if (rule.Target.Protocol == ServiceTarget.TcpProtocol)
                    {
                        DemuxTcp ??= rule;
                    }
                    else if (rule.Target.Protocol == ServiceTarget.UdpProtocol)
                    {
                        DemuxUdp ??= rule;
                    }
                }

                if (rule.HasTimeout)
                {
                    HasTimeouts = true;
                }
            }
        }

        RuleCount = count;
    }

    /// <summary>The entry's prefix (0–256 bits).</summary>
    public ServicePrefix Prefix { get; }

    /// <summary>The priority sets, highest priority first (at least one, none empty).</summary>
    public ImmutableArray<ServicePrioritySet> Sets { get; }

    /// <summary>The highest-priority set: the only one used to resolve packets.</summary>
    public ServicePrioritySet TopSet { get; }

    /// <summary>Number of rules in all sets.</summary>
    public int RuleCount { get; }

    /// <summary>The entry's counters (they survive modifications of the entry).</summary>
    public ServiceCounters Counters { get; }

    /// <summary>Every rule, highest priority first (allocates an enumerator; not for the packet path).</summary>
    public IEnumerable<ServiceRule> Rules
    {
        get
        {
            foreach (var set in Sets)
            {
                foreach (var rule in set.Rules)
                {
                    yield return rule;
                }
            }
        }
    }

    internal ServiceRule? DemuxAny { get; }

    internal ServiceRule? DemuxTcp { get; }

    internal ServiceRule? DemuxUdp { get; }

    internal bool HasTimeouts { get; }

    /// <summary>Finds the rule whose target has the identity of <paramref name="target"/> (see <see cref="ServiceTarget.IsSameTarget"/>), in any set.</summary>
    public bool TryGetRule(ServiceTarget target, [NotNullWhen(true)] out ServiceRule? rule)
    {
        foreach (var set in Sets)
        {
            foreach (var r in set.Rules)
            {
                if (r.Target.IsSameTarget(target))
                {
                    rule = r;
                    return true;
                }
            }
        }

        rule = null;
        return false;
    }

    /// <summary>The preferred DEMUX rule for <paramref name="protocol"/> (0 = any protocol), or null.</summary>
    internal ServiceRule? GetDemux(byte protocol) => protocol switch
    {
        0 => DemuxAny,
        ServiceTarget.TcpProtocol => DemuxTcp,
        ServiceTarget.UdpProtocol => DemuxUdp,
        _ => null,
    };

    /// <summary>Text form: prefix and rule count.</summary>
    public override string ToString() => $"{Prefix} ({RuleCount} rule{(RuleCount == 1 ? "" : "s")})";

    internal static ServiceEntry Create(ServicePrefix prefix, ServiceRule rule) =>
        new(prefix, [new ServicePrioritySet(rule.Priority, [rule])], rule.EntryCounters);

    /// <summary>This entry with <paramref name="rule"/> appended to its priority set.</summary>
    internal ServiceEntry WithRule(ServiceRule rule)
    {
        var rules = Flatten(RuleCount + 1);
        rules.Add(rule);
        return FromRules(rules)!;
    }

    /// <summary>This entry with <paramref name="old"/> replaced by <paramref name="updated"/>; a rule that changes priority moves to the end of its new set.</summary>
    internal ServiceEntry WithReplaced(ServiceRule old, ServiceRule updated)
    {
        var rules = Flatten(RuleCount);
        var i = rules.IndexOf(old);
        if (old.Priority == updated.Priority)
        {
            rules[i] = updated;
        }
        else
        {
            rules.RemoveAt(i);
            rules.Add(updated);
        }

        return FromRules(rules)!;
    }

    /// <summary>This entry without the rules matching <paramref name="remove"/>; null when none is left.</summary>
    internal ServiceEntry? Without(Func<ServiceRule, bool> remove)
    {
        var rules = Flatten(RuleCount);
        rules.RemoveAll(r => remove(r));
        return FromRules(rules);
    }

    private List<ServiceRule> Flatten(int capacity)
    {
        var rules = new List<ServiceRule>(capacity);
        foreach (var set in Sets)
        {
            rules.AddRange(set.Rules);
        }

        return rules;
    }

    /// <summary>Groups <paramref name="rules"/> into priority sets, highest first, keeping their relative order.</summary>
    private ServiceEntry? FromRules(List<ServiceRule> rules)
    {
        if (rules.Count == 0)
        {
            return null;
        }

        // Stable insertion sort by priority, highest first (entries hold a handful of rules).
        for (var i = 1; i < rules.Count; i++)
        {
            var rule = rules[i];
            var j = i - 1;
            while (j >= 0 && rules[j].Priority < rule.Priority)
            {
                rules[j + 1] = rules[j];
                j--;
            }

            rules[j + 1] = rule;
        }

        var sets = ImmutableArray.CreateBuilder<ServicePrioritySet>();
        var start = 0;
        for (var i = 1; i <= rules.Count; i++)
        {
            if (i == rules.Count || rules[i].Priority != rules[start].Priority)
            {
                sets.Add(new ServicePrioritySet(rules[start].Priority, ImmutableArray.Create(CollectionsMarshal.AsSpan(rules).Slice(start, i - start))));
                start = i;
            }
        }

        return new ServiceEntry(Prefix, sets.ToImmutable(), Counters);
    }
}
