using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

/// <summary>Readers on other threads never block, fail or see a torn entry while one writer updates.</summary>
public sealed class ServiceTableConcurrencyTests
{
    [Fact]
    public void Lookups_during_ten_thousand_updates_always_see_whole_entries()
    {
        var table = new ServiceTable();
        var gen = new ServiceIdGenerator(77);
        var pool = Enumerable.Range(0, 400).Select(_ => gen.Prefix()).Where(p => p.Length > 0).Distinct().ToArray();
        var keys = Enumerable.Range(0, 1000).Select(i => i % 2 == 0 ? gen.Id() : pool[i % pool.Length].Apply(gen.RandomId())).ToArray();

        // Permanent entries: the default rule (so every lookup finds something) and one /256 in the thick of it.
        var pinned = ServicePrefix.Exact(pool[0].Apply(gen.RandomId()));
        table.Add(ServicePrefix.Default, ServiceTarget.Forward(AddressOf(ServicePrefix.Default), 0));
        table.Add(pinned, ServiceTarget.Forward(AddressOf(pinned), 0));
        table.Add(pinned, ServiceTarget.Demux(1, 6));

        const int Updates = 10_000;
        var done = 0;
        var failures = new List<string>();
        var lookups = new long[2];

        void Reader(int index)
        {
            var random = new SeededRandomSource((ulong)index);
            long n = 0;
            long lastVersion = 0;
            try
            {
                // Bounded: stops when the writer is done, or after far more iterations than it needs.
                while (Volatile.Read(ref done) == 0 && n < 200_000_000)
                {
                    var key = keys[n % keys.Length];
                    n++;
                    var version = table.Version;
                    if (version < lastVersion)
                    {
                        throw new InvalidOperationException($"version went back from {lastVersion} to {version}");
                    }

                    lastVersion = version;
                    var entry = table.Lookup(key) ?? throw new InvalidOperationException($"no entry for {key}");
                    CheckWhole(entry, key);
                    if (!table.TrySelect(entry, random, out var rule) || rule.Target.Address != AddressOf(entry.Prefix))
                    {
                        throw new InvalidOperationException($"bad selection in {entry.Prefix}");
                    }

                    var exact = table.Lookup(pinned.Id);
                    if (exact is null || exact.Prefix != pinned)
                    {
                        throw new InvalidOperationException($"pinned /256 resolved to {exact?.Prefix}");
                    }

                    if (!table.TryLookupDemux(pinned.Id, 6, out var demux, out var socket) || demux.Prefix != pinned || socket.Target.Socket != 1)
                    {
                        throw new InvalidOperationException("pinned socket not found");
                    }
                }
            }
            catch (Exception e)
            {
                lock (failures)
                {
                    failures.Add(e.Message);
                }
            }

            lookups[index] = n;
        }

        var readers = Enumerable.Range(0, 2).Select(i => new Thread(() => Reader(i)) { IsBackground = true }).ToList();
        readers.ForEach(t => t.Start());

        var rng = new Random(99);
        for (var i = 0; i < Updates; i++)
        {
            var prefix = pool[rng.Next(pool.Length)];
            var iface = 1 + rng.Next(4);
            var target = ServiceTarget.Forward(AddressOf(prefix), iface);
            switch (rng.Next(3))
            {
                case 0:
                    table.Add(prefix, target, priority: (uint)rng.Next(3), weight: (uint)rng.Next(1, 5));
                    break;
                case 1:
                    table.Remove(prefix, target);
                    break;
                default:
                    table.Modify(prefix, target, priority: (uint)rng.Next(3), weight: (uint)rng.Next(1, 5));
                    break;
            }
        }

        Volatile.Write(ref done, 1);
        readers.ForEach(t => t.Join());
        Assert.Empty(failures);
        Assert.True(lookups.Sum() > 0);
        TrieInvariants.Check(table);
    }

    /// <summary>Each prefix's FORWARD targets carry an address derived from the prefix, so a mix-up shows.</summary>
    private static LinkAddress AddressOf(ServicePrefix prefix) => LinkAddress.FromIPv4((uint)prefix.GetHashCode());

    private static void CheckWhole(ServiceEntry entry, ServiceId key)
    {
        if (!entry.Prefix.Contains(key))
        {
            throw new InvalidOperationException($"{entry.Prefix} does not contain {key}");
        }

        if (entry.Sets.IsDefaultOrEmpty || !ReferenceEquals(entry.TopSet, entry.Sets[0]))
        {
            throw new InvalidOperationException($"{entry.Prefix}: no sets");
        }

        var count = 0;
        var previous = uint.MaxValue;
        foreach (var set in entry.Sets)
        {
            if (set.Rules.IsDefaultOrEmpty || (count > 0 && set.Priority >= previous))
            {
                throw new InvalidOperationException($"{entry.Prefix}: bad set order");
            }

            previous = set.Priority;
            ulong total = 0;
            foreach (var rule in set.Rules)
            {
                count++;
                total += rule.Weight;
                if (rule.Priority != set.Priority || (rule.Target.Type == ServiceTargetType.Forward && rule.Target.Address != AddressOf(entry.Prefix)))
                {
                    throw new InvalidOperationException($"{entry.Prefix}: foreign rule {rule}");
                }
            }

            if (total != set.TotalWeight)
            {
                throw new InvalidOperationException($"{entry.Prefix}: weights");
            }
        }

        if (count != entry.RuleCount)
        {
            throw new InvalidOperationException($"{entry.Prefix}: rule count");
        }
    }
}
