using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

/// <summary>The service table agrees with <see cref="NaiveServiceTable"/> on long seeded random operation sequences.</summary>
public sealed class ServiceTablePropertyTests
{
    private static readonly LinkAddress[] _addresses =
    [
        LinkAddress.Parse("10.0.0.1"),
        LinkAddress.Parse("10.0.0.2:54325"),
        LinkAddress.Parse("10.0.0.3"),
        LinkAddress.Parse("[fd00::1]:54325"),
    ];

    private static readonly uint[] _priorities = [0, 1, 1, 5, 5, 32000, int.MaxValue];
    private static readonly uint[] _weights = [0, 1, 2, 7, 1024, int.MaxValue];

    /// <summary>The long run (about a minute): also checks that it reached every kind of operation and outcome.</summary>
    [Fact]
    [Trait("Tier", "slow")]
    public void Hundred_thousand_random_operations_agree_with_a_linear_scan_reference()
    {
        var counts = RunAgainstReference(100_000);
        var summary = string.Join(", ", counts.OrderBy(c => c.Key).Select(c => $"{c.Key}={c.Value}"));
        // The sequence exercised every kind of operation and outcome, and the table stayed populated.
        Assert.True(counts["add:Ok"] > 10_000 && counts["add:AlreadyExists"] > 1_000 && counts["remove:Ok"] > 5_000, summary);
        Assert.True(counts["modify:Ok"] > 5_000 && counts["modify:AlreadyExists"] > 0 && counts["expire"] > 1_000, summary);
        Assert.True(counts.Keys.Count(k => k.Contains("Invalid", StringComparison.Ordinal)) >= 4, summary);
    }

    /// <summary>The same seeded sequence, its first tenth (the fast tier).</summary>
    [Fact]
    public void Ten_thousand_random_operations_agree_with_a_linear_scan_reference() => RunAgainstReference(10_000);

    private static Dictionary<string, int> RunAgainstReference(int steps)
    {
        var gen = new ServiceIdGenerator(seed: 20120425);
        var rng = gen.Random;
        var selection = new SeededRandomSource(7);
        var table = new ServiceTable();
        var model = new NaiveServiceTable();
        var pool = Enumerable.Range(0, 700).Select(_ => gen.Prefix()).Distinct().ToArray();
        var now = TimeSpan.Zero;
        var counts = new Dictionary<string, int>();

        for (var step = 0; step < steps; step++)
        {
            now += TimeSpan.FromSeconds(1);
            var prefix = pool[rng.Next(pool.Length)];
            var dice = rng.Next(100);
            string op;
            if (dice < 40)
            {
                op = "add";
                var target = Target(rng);
                var priority = rng.Next(50) == 0 ? (uint)int.MaxValue + 1 : _priorities[rng.Next(_priorities.Length)];
                var weight = rng.Next(50) == 0 ? uint.MaxValue : _weights[rng.Next(_weights.Length)];
                var idle = Timeout(rng);
                var hard = Timeout(rng);
                var expected = model.Add(prefix, target, priority, weight, idle, hard, now);
                var actual = table.Add(prefix, target, priority, weight, ServiceFlags.None, idle, hard, now);
                Same(expected, actual, step, "add");
                op += ":" + actual;
            }
            else if (dice < 62)
            {
                op = "remove";
                var target = Existing(model, prefix, rng) ?? Target(rng);
                var expected = model.Remove(prefix, target);
                Same(expected, table.Remove(prefix, target), step, "remove");
                op += ":" + expected;
            }
            else if (dice < 80)
            {
                op = "modify";
                var target = Existing(model, prefix, rng) ?? Target(rng);
                LinkAddress? address = (target.Type == ServiceTargetType.Forward || rng.Next(20) == 0) && rng.Next(3) == 0
                    ? _addresses[rng.Next(_addresses.Length)]
                    : null;
                uint? priority = rng.Next(2) == 0 ? _priorities[rng.Next(_priorities.Length)] : null;
                uint? weight = rng.Next(2) == 0 ? _weights[rng.Next(_weights.Length)] : null;
                var expected = model.Modify(prefix, target, address, priority, weight);
                Same(expected, table.Modify(prefix, target, address, priority, weight), step, "modify");
                op += ":" + expected;
            }
            else if (dice < 81)
            {
                op = "interface";
                var iface = rng.Next(4);
                Assert.Equal(model.RemoveInterface(iface), table.RemoveInterface(iface));
            }
            else if (dice < 83)
            {
                op = "expire";
                var expired = new List<ServiceExpiration>();
                var expected = model.Expire(now);
                Assert.Equal(expected.Count, table.Expire(now, expired));
                Assert.Equal(
                    string.Join(";", expected.Select(e => $"{e.Prefix} {e.Target}").Order(StringComparer.Ordinal)),
                    string.Join(";", expired.Select(e => $"{e.Prefix} {e.Rule.Target}").Order(StringComparer.Ordinal)));
            }
            else
            {
                op = "use";
                var id = gen.Id();
                if (table.TrySelect(table.Lookup(id), selection, out var rule))
                {
                    var entry = table.Lookup(id)!;
                    table.RecordResolved(rule, 100, now);
                    model.Touch(entry.Prefix, rule.Target, now);
                }
            }

            counts[op] = counts.GetValueOrDefault(op) + 1;
            if (model.Count != table.Count)
            {
                Assert.Fail($"step {step} ({op}): count {table.Count}, expected {model.Count}");
            }
            for (var k = 0; k < 2; k++)
            {
                var id = k == 0 ? gen.Id() : pool[rng.Next(pool.Length)].Apply(gen.RandomId());
                AssertSame(model.Lookup(id), table.Lookup(id));
                var protocol = (byte)(rng.Next(4) switch { 0 => 0, 1 => 6, 2 => 17, _ => 99 });
                var demux = model.LookupDemux(id, protocol);
                Same(demux.HasValue, table.TryLookupDemux(id, protocol, out var demuxEntry, out var demuxRule), step, "demux");
                if (demux is { } d)
                {
                    AssertSame(d.Entry, demuxEntry);
                    Same(d.Rule.Target, demuxRule!.Target, step, "demux rule");
                }
            }

            var probe = pool[rng.Next(pool.Length)];
            var exact = model.Find(probe);
            Same(exact is not null, table.TryGetExact(probe, out var found), step, "exact");
            AssertSame(exact, found);

            if (step % 100 == 0)
            {
                // The batched lookup gives the answers of the single one (37: not a multiple of its lane count).
                var batch = Enumerable.Range(0, 37).Select(i => i % 3 == 0 ? gen.RandomId() : gen.Id()).ToArray();
                var results = new ServiceEntry?[batch.Length];
                table.LookupBatch(batch, results);
                for (var i = 0; i < batch.Length; i++)
                {
                    if (!ReferenceEquals(results[i], table.Lookup(batch[i])))
                    {
                        Assert.Fail($"step {step}: batch lookup of {batch[i]} gave {results[i]?.Prefix}, single {table.Lookup(batch[i])?.Prefix}");
                    }
                }
            }

            if (step % 2500 == 0)
            {
                TrieInvariants.Check(table);
                Assert.Equal(
                    string.Join(";", model.Prefixes.Order()),
                    string.Join(";", table.Entries.Select(e => e.Prefix).Order()));
            }
        }

        TrieInvariants.Check(table);
        counts[$"final={table.Count}"] = 0;
        return counts;
    }

    private static void Same<T>(T expected, T actual, int step, string what)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            Assert.Fail($"step {step}, {what}: expected {expected}, got {actual}");
        }
    }

    private static ServiceTarget Target(Random rng) => rng.Next(40) switch
    {
        < 20 => ServiceTarget.Forward(_addresses[rng.Next(_addresses.Length)], rng.Next(3)),
        < 30 => ServiceTarget.Demux(1 + rng.Next(6), rng.Next(2) == 0 ? (byte)6 : (byte)17),
        < 33 => ServiceTarget.Delay(),
        < 36 => ServiceTarget.Drop(),
        36 => ServiceTarget.Forward(LinkAddress.None, 1),
        37 => ServiceTarget.Demux(0, 6),
        38 => ServiceTarget.Demux(3, 99),
        _ => ServiceTarget.Delay() with { Interface = 2 },
    };

    private static ServiceTarget? Existing(NaiveServiceTable model, ServicePrefix prefix, Random rng)
    {
        var entry = model.Find(prefix);
        return entry is null || rng.Next(4) == 0 ? null : entry.Rules[rng.Next(entry.Rules.Count)].Target;
    }

    private static TimeSpan? Timeout(Random rng) => rng.Next(100) switch
    {
        < 12 => TimeSpan.FromSeconds(20 + rng.Next(400)),
        12 => TimeSpan.Zero,
        _ => null,
    };

    private static void AssertSame(NaiveServiceTable.Entry? expected, ServiceEntry? actual)
    {
        if (expected?.Prefix != actual?.Prefix)
        {
            Assert.Fail($"expected entry {expected?.Prefix.ToString() ?? "none"}, got {actual?.Prefix.ToString() ?? "none"}");
        }

        if (expected is null || actual is null)
        {
            return;
        }

        // Plain loops: this runs several hundred thousand times.
        var ordered = expected.Ordered.ToList();
        var i = 0;
        var setIndex = -1;
        var weight = 0UL;
        foreach (var set in actual.Sets)
        {
            setIndex++;
            weight = 0;
            if (set.Rules.Length == 0 || (setIndex > 0 && set.Priority >= actual.Sets[setIndex - 1].Priority))
            {
                Assert.Fail($"{actual.Prefix}: sets out of order or empty");
            }

            foreach (var rule in set.Rules)
            {
                var e = i < ordered.Count ? ordered[i] : null;
                if (e is null || e.Target != rule.Target || e.Priority != rule.Priority || e.Weight != rule.Weight || rule.Priority != set.Priority)
                {
                    Assert.Fail($"{actual.Prefix}: rule {i} expected {e?.Target} prio {e?.Priority} weight {e?.Weight}, got {rule}");
                }

                weight += rule.Weight;
                i++;
            }

            if (weight != set.TotalWeight)
            {
                Assert.Fail($"{actual.Prefix}: total weight {set.TotalWeight}, rules sum to {weight}");
            }
        }

        if (i != ordered.Count || i != actual.RuleCount || !ReferenceEquals(actual.Sets[0], actual.TopSet))
        {
            Assert.Fail($"{actual.Prefix}: expected {ordered.Count} rules, got {i} (RuleCount {actual.RuleCount})");
        }
    }
}
