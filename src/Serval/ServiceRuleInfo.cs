using System.Globalization;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval;

/// <summary>A snapshot of one service-table rule with its counters (<see cref="ServalHostAdministration.GetRules"/>).</summary>
public sealed record ServiceRuleInfo
{
    /// <summary>The serviceID prefix the rule belongs to.</summary>
    public required ServicePrefix Prefix { get; init; }

    /// <summary>Where the rule sends packets (FORWARD, DEMUX, DELAY, DROP).</summary>
    public required ServiceTarget Target { get; init; }

    /// <summary>Priority (the highest set of an entry is used).</summary>
    public uint Priority { get; init; }

    /// <summary>Weight within its priority set (anycast choice in proportion to weights).</summary>
    public uint Weight { get; init; }

    /// <summary>Service flags.</summary>
    public ServiceFlags Flags { get; init; }

    /// <summary>Packets this rule resolved.</summary>
    public long PacketsResolved { get; init; }

    /// <summary>Bytes this rule resolved.</summary>
    public long BytesResolved { get; init; }

    /// <summary>Packets this rule dropped.</summary>
    public long PacketsDropped { get; init; }

    /// <summary>One line: prefix, target, priority, weight, packets resolved and dropped.</summary>
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Prefix} {Target} prio {Priority} weight {Weight} resolved {PacketsResolved} dropped {PacketsDropped}");

    internal static ServiceRuleInfo From(ServiceEntry entry, ServiceRule rule) => new()
    {
        Prefix = entry.Prefix,
        Target = rule.Target,
        Priority = rule.Priority,
        Weight = rule.Weight,
        Flags = rule.Flags,
        PacketsResolved = rule.Counters.PacketsResolved,
        BytesResolved = rule.Counters.BytesResolved,
        PacketsDropped = rule.Counters.PacketsDropped,
    };
}
