using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

/// <summary>The persistent trie under the table: canonical shape, path copying, lookups at every length.</summary>
public sealed class PrefixTrieTests
{
    [Fact]
    public void Shape_depends_only_on_the_set_of_prefixes()
    {
        var gen = new ServiceIdGenerator(11);
        var prefixes = Enumerable.Range(0, 400).Select(_ => gen.Prefix()).Distinct().ToList();
        var a = new ServiceTable();
        var b = new ServiceTable();
        foreach (var p in prefixes)
        {
            a.Add(p, ServiceTarget.Drop());
        }

        // b: reversed order, with extra prefixes added and removed in between.
        var extras = Enumerable.Range(0, 200).Select(_ => gen.Prefix()).Distinct().Except(prefixes).ToList();
        foreach (var p in Enumerable.Reverse(prefixes).Zip(extras.Concat(Enumerable.Repeat(ServicePrefix.Default, prefixes.Count))))
        {
            b.Add(p.First, ServiceTarget.Drop());
            if (p.Second != ServicePrefix.Default)
            {
                b.Add(p.Second, ServiceTarget.Drop());
            }
        }

        foreach (var p in extras)
        {
            b.Remove(p, ServiceTarget.Drop());
        }

        TrieInvariants.Check(a);
        TrieInvariants.Check(b);
        Assert.Equal(TrieInvariants.Dump(a.CurrentVersion.Root), TrieInvariants.Dump(b.CurrentVersion.Root));
    }

    [Fact]
    public void Removing_everything_leaves_an_empty_root()
    {
        var gen = new ServiceIdGenerator(12);
        var table = new ServiceTable();
        var prefixes = Enumerable.Range(0, 300).Select(_ => gen.Prefix()).Distinct().ToList();
        foreach (var p in prefixes)
        {
            table.Add(p, ServiceTarget.Delay());
        }

        var random = new Random(5);
        foreach (var p in prefixes.OrderBy(_ => random.Next()))
        {
            Assert.Equal(ServiceTableResult.Ok, table.Remove(p, ServiceTarget.Delay()));
        }

        var root = table.CurrentVersion.Root;
        Assert.Equal(0, root.Count);
        Assert.Equal(0, root.ChildCount);
        Assert.True(root.Covered.IsEmpty);
        Assert.Equal(1, PrefixTrie.CountNodes(root));
    }

    [Fact]
    public void Every_length_on_one_path_is_found()
    {
        var id = ServiceId.FromName("deep");
        var table = new ServiceTable();
        for (var length = 0; length <= 256; length += 1)
        {
            table.Add(new ServicePrefix(id, length), ServiceTarget.Forward(LinkAddress.FromIPv4(1), length));
        }

        TrieInvariants.Check(table);
        Assert.Equal(256, table.Lookup(id)!.Prefix.Length);
        for (var length = 0; length < 256; length++)
        {
            Assert.Equal(length, table.Lookup(id.WithBit(length, !id.GetBit(length)))!.Prefix.Length);
            Assert.True(table.TryGetExact(new ServicePrefix(id, length), out var e));
            Assert.Equal(length, e.TopSet.Rules[0].Target.Interface);
        }

        // Remove odd lengths: each key now resolves to the longest even length not beyond its divergence.
        for (var length = 1; length <= 256; length += 2)
        {
            table.Remove(new ServicePrefix(id, length), ServiceTarget.Forward(LinkAddress.FromIPv4(1), length));
        }

        TrieInvariants.Check(table);
        for (var length = 0; length < 256; length++)
        {
            Assert.Equal(length & ~1, table.Lookup(id.WithBit(length, !id.GetBit(length)))!.Prefix.Length);
        }
    }

    [Fact]
    public void An_update_copies_only_the_path_it_changes()
    {
        var gen = new ServiceIdGenerator(13);
        var table = new ServiceTable();
        foreach (var p in Enumerable.Range(0, 2000).Select(_ => ServicePrefix.Exact(gen.RandomId())))
        {
            table.Add(p, ServiceTarget.Drop());
        }

        var before = table.CurrentVersion.Root;
        var nodes = new HashSet<TrieNode>(ReferenceEqualityComparer.Instance);
        Collect(before, nodes);
        table.Add(ServicePrefix.Exact(gen.RandomId()), ServiceTarget.Drop());
        var after = new HashSet<TrieNode>(ReferenceEqualityComparer.Instance);
        Collect(table.CurrentVersion.Root, after);
        after.ExceptWith(nodes);
        Assert.InRange(after.Count, 1, 3);

        static void Collect(TrieNode node, HashSet<TrieNode> set)
        {
            set.Add(node);
            foreach (var child in Enumerable.Range(0, 256).Select(node.ChildAt).OfType<TrieNode>())
            {
                Collect(child, set);
            }
        }
    }

    [Fact]
    public void Single_batch_and_naive_lookups_agree_on_near_miss_keys()
    {
        var gen = new ServiceIdGenerator(14, bases: 8);
        var table = new ServiceTable();
        var model = new NaiveServiceTable();
        var prefixes = Enumerable.Range(0, 3000).Select(_ => gen.Prefix()).Distinct().ToList();
        foreach (var p in prefixes)
        {
            table.Add(p, ServiceTarget.Drop());
            model.Add(p, ServiceTarget.Drop(), 1, 1, null, null, TimeSpan.Zero);
        }

        // Keys inside stored prefixes, keys one bit off a stored prefix (at every depth), and random keys.
        var random = gen.Random;
        var keys = new List<ServiceId>();
        foreach (var p in prefixes.Take(1500))
        {
            var inside = p.Apply(gen.RandomId());
            keys.Add(inside);
            if (p.Length > 0)
            {
                var bit = random.Next(p.Length);
                keys.Add(inside.WithBit(bit, !inside.GetBit(bit)));
            }

            keys.Add(gen.RandomId());
        }

        var results = new ServiceEntry?[keys.Count];
        table.LookupBatch(keys.ToArray(), results);
        for (var i = 0; i < keys.Count; i++)
        {
            var expected = model.Lookup(keys[i])?.Prefix;
            Assert.Equal(expected, table.Lookup(keys[i])?.Prefix);
            Assert.Equal(expected, results[i]?.Prefix);
        }

        TrieInvariants.Check(table);
    }

    [Fact]
    public void Top_index_follows_updates_of_short_and_long_prefixes()
    {
        var table = new ServiceTable();
        var id = ServiceId.Parse("0xabcd1234");
        var lengths = new[] { 0, 4, 7, 8, 9, 12, 15, 16, 17, 24, 40, 256 };
        var random = new Random(3);
        for (var round = 0; round < 300; round++)
        {
            var length = lengths[random.Next(lengths.Length)];
            var prefix = new ServicePrefix(random.Next(3) == 0 ? id.WithBit(random.Next(16), true) : id, length);
            if (random.Next(2) == 0)
            {
                table.Add(prefix, ServiceTarget.Drop());
            }
            else
            {
                table.Remove(prefix, ServiceTarget.Drop());
            }

            if (round % 10 == 0)
            {
                TrieInvariants.Check(table);
            }
        }

        TrieInvariants.Check(table);
    }
}
