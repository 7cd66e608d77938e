using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

/// <summary>Anycast selection is weighted random with the injected random source.</summary>
public sealed class ServiceSelectionTests
{
    [Fact]
    public void Weights_1_2_7_give_shares_within_one_percentage_point_over_100000_draws()
    {
        var table = new ServiceTable();
        var prefix = ServicePrefix.Exact(ServiceId.FromName("web"));
        var addresses = new[] { LinkAddress.Parse("10.0.0.1"), LinkAddress.Parse("10.0.0.2"), LinkAddress.Parse("10.0.0.3") };
        var weights = new uint[] { 1, 2, 7 };
        for (var i = 0; i < 3; i++)
        {
            table.Add(prefix, ServiceTarget.Forward(addresses[i], 1), priority: 10, weight: weights[i]);
        }

        var entry = table.Lookup(prefix.Id)!;
        var random = new SeededRandomSource(2012);
        var hits = new int[3];
        const int Draws = 100_000;
        for (var n = 0; n < Draws; n++)
        {
            Assert.True(table.TrySelect(entry, random, out var rule));
            hits[Array.IndexOf(addresses, rule.Target.Address)]++;
        }

        for (var i = 0; i < 3; i++)
        {
            var share = (double)hits[i] / Draws;
            var expected = weights[i] / 10.0;
            Assert.True(Math.Abs(share - expected) < 0.01, $"target {i}: share {share:P2}, expected {expected:P0}");
        }
    }

    [Fact]
    public void Selection_is_deterministic_for_a_seed()
    {
        var table = new ServiceTable();
        var prefix = ServicePrefix.Parse("0x10/8");
        for (var i = 1; i <= 5; i++)
        {
            table.Add(prefix, ServiceTarget.Forward(LinkAddress.FromIPv4(0x0A000000u + (uint)i), 1), weight: (uint)i);
        }

        var entry = table.Lookup(prefix.Id)!;
        IEnumerable<LinkAddress> Run(ulong seed)
        {
            var random = new SeededRandomSource(seed);
            for (var n = 0; n < 50; n++)
            {
                table.TrySelect(entry, random, out var rule);
                yield return rule!.Target.Address;
            }
        }

        Assert.Equal(Run(9).ToList(), Run(9).ToList());
        Assert.NotEqual(Run(9).ToList(), Run(10).ToList());
    }

    [Fact]
    public void Huge_weights_do_not_overflow()
    {
        var table = new ServiceTable();
        var prefix = ServicePrefix.Parse("0x10/8");
        table.Add(prefix, ServiceTarget.Forward(LinkAddress.Parse("10.0.0.1"), 1), weight: ServiceTable.MaxWeight);
        table.Add(prefix, ServiceTarget.Forward(LinkAddress.Parse("10.0.0.2"), 1), weight: ServiceTable.MaxWeight);
        table.Add(prefix, ServiceTarget.Forward(LinkAddress.Parse("10.0.0.3"), 1), weight: ServiceTable.MaxWeight);
        var entry = table.Lookup(prefix.Id)!;
        Assert.Equal(3UL * ServiceTable.MaxWeight, entry.TopSet.TotalWeight);
        var random = new SeededRandomSource(4);
        var seen = new HashSet<LinkAddress>();
        for (var n = 0; n < 200; n++)
        {
            table.TrySelect(entry, random, out var rule);
            seen.Add(rule!.Target.Address);
        }

        Assert.Equal(3, seen.Count);
    }
}
