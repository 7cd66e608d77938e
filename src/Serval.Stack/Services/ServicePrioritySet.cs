using System.Collections.Immutable;

namespace Serval.Stack.Services;

/// <summary>The rules of one entry that share a priority. Immutable.</summary>
public sealed class ServicePrioritySet
{
    internal ServicePrioritySet(uint priority, ImmutableArray<ServiceRule> rules)
    {
        Priority = priority;
        Rules = rules;
        ulong total = 0;
        var flags = ServiceFlags.None;
        foreach (var rule in rules)
        {
            total += rule.Weight;
            flags |= rule.Flags;
        }

        TotalWeight = total;
        Flags = flags;
    }

    /// <summary>The priority shared by every rule of the set.</summary>
    public uint Priority { get; }

    /// <summary>The rules, in the order they joined the set (at least one).</summary>
    public ImmutableArray<ServiceRule> Rules { get; }

    /// <summary>Sum of the rules' weights (the normalizer of anycast selection).</summary>
    public ulong TotalWeight { get; }

    /// <summary>The union of the rules' flags.</summary>
    public ServiceFlags Flags { get; }

    /// <summary>The rule whose cumulative-weight interval contains <paramref name="point"/> (0 ≤ point &lt; <see cref="TotalWeight"/>).</summary>
    internal ServiceRule Pick(ulong point)
    {
        var rules = Rules;
        for (var i = 0; i < rules.Length - 1; i++)
        {
            var weight = rules[i].Weight;
            if (point < weight)
            {
                return rules[i];
            }

            point -= weight;
        }

        return rules[^1];
    }
}
