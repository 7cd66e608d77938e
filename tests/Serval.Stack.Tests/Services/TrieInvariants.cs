using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

/// <summary>Checks every structural invariant of the service trie, including that its shape is canonical.</summary>
internal static class TrieInvariants
{
    public static void Check(ServiceTable table)
    {
        var version = table.CurrentVersion;
        var all = Check(version.Root);
        Assert.Equal(version.Count, all.Count);

        // The top index, maintained incrementally, equals one built from scratch.
        var rebuilt = TopIndex.Build(version.Root);
        for (var b0 = 0; b0 < 256; b0++)
        {
            for (var b1 = 0; b1 < 256; b1++)
            {
                if (version.Top.EntryAt(b0, b1) != rebuilt.EntryAt(b0, b1))
                {
                    Assert.Fail($"top index entry {b0:x2}{b1:x2}: {version.Top.EntryAt(b0, b1)} instead of {rebuilt.EntryAt(b0, b1)}");
                }
            }
        }
        CheckDemux(version.Tcp, all, e => e.Rules.Any(r => r.Target.Type == ServiceTargetType.Demux && r.Target.Protocol == 6));
        CheckDemux(version.Udp, all, e => e.Rules.Any(r => r.Target.Type == ServiceTargetType.Demux && r.Target.Protocol == 17));
        CheckDemux(version.AnyDemux, all, e => e.Rules.Any(r => r.Target.Type == ServiceTargetType.Demux));
    }

    public static List<ServiceEntry> Check(TrieNode root)
    {
        Assert.Equal(0, root.Depth);
        return CheckNode(root, isRoot: true, minDepth: 0);
    }

    /// <summary>A text dump of the shape (depths, slots, prefixes), equal for equal shapes.</summary>
    public static string Dump(TrieNode node)
    {
        var sb = new System.Text.StringBuilder();
        Dump(node, sb, 0);
        return sb.ToString();
    }

    private static void Dump(TrieNode node, System.Text.StringBuilder sb, int indent)
    {
        sb.Append(' ', indent).Append("node d=").Append(node.Depth).Append(" n=").Append(node.Count).Append(" self=").Append(node.Self?.Prefix.ToString() ?? "-").AppendLine();
        foreach (var e in node.Interior)
        {
            sb.Append(' ', indent + 1).Append("interior ").Append(e.Prefix).AppendLine();
        }

        for (var slot = 0; slot < 256; slot++)
        {
            switch (node.ChildAt(slot))
            {
                case TrieNode child:
                    sb.Append(' ', indent + 1).Append("slot ").Append(slot).AppendLine();
                    Dump(child, sb, indent + 2);
                    break;
                case ServiceEntry tail:
                    sb.Append(' ', indent + 1).Append("slot ").Append(slot).Append(" tail ").Append(tail.Prefix).AppendLine();
                    break;
            }
        }
    }

    private static void CheckDemux(TrieNode root, List<ServiceEntry> all, Func<ServiceEntry, bool> member)
    {
        var inTrie = Check(root);
        var expected = all.Where(member).ToList();
        Assert.Equal(expected.Count, inTrie.Count);
        foreach (var entry in expected)
        {
            // The very same (current) entry object, not a stale version.
            Assert.Same(entry, PrefixTrie.Find(root, entry.Prefix));
        }
    }

    private static bool Matches(ServiceId id, TrieNode node) => id.CommonPrefixLength(ToId(node.Key)) >= node.Depth;

    private static ServiceId ToId(KeyWords key)
    {
        // Reconstruct the id through the public surface: every byte at depths 0, 8, ..., 248.
        var bytes = new byte[32];
        for (var i = 0; i < 32; i++)
        {
            bytes[i] = (byte)key.ByteAt(i * 8);
        }

        return new ServiceId(bytes);
    }

    private static List<ServiceEntry> CheckNode(TrieNode node, bool isRoot, int minDepth)
    {
        var d = node.Depth;
        Assert.True(d % 8 == 0 && d <= 248 && d >= minDepth, $"bad depth {d} (min {minDepth})");
        var nodeId = ToId(node.Key);
        Assert.Equal(nodeId, nodeId.Truncate(d));
        var entries = new List<ServiceEntry>();
        if (node.Self is { } self)
        {
            Assert.Equal(d, self.Prefix.Length);
            Assert.Equal(nodeId, self.Prefix.Id);
            entries.Add(self);
        }

        ServicePrefix? last = null;
        foreach (var e in node.Interior)
        {
            Assert.InRange(e.Prefix.Length, d + 1, d + 7);
            Assert.True(last is null || last.Value.Length < e.Prefix.Length || (last.Value.Length == e.Prefix.Length && last.Value.Id < e.Prefix.Id), "interior not in (length, id) order");
            last = e.Prefix;
            Assert.True(Matches(e.Prefix.Id, node));
            entries.Add(e);
        }

        // Local expansion against brute force.
        Assert.Equal(node.Local.Covered.Count, node.Covered.Count);
        for (var slot = 0; slot < 256; slot++)
        {
            ServiceEntry? best = node.Self;
            foreach (var e in node.Interior)
            {
                var extra = e.Prefix.Length - d;
                if ((int)e.Prefix.Id.GetBits(d, extra) == slot >> (8 - extra) && (best is null || e.Prefix.Length > best.Prefix.Length))
                {
                    best = e;
                }
            }

            Assert.Equal(best is not null, node.Covered.Test(slot));
            Assert.Same(best, node.LocalBest(slot));
        }

        var children = 0;
        for (var slot = 0; slot < 256; slot++)
        {
            var child = node.ChildAt(slot);
            if (child is null)
            {
                continue;
            }

            children++;

            // The slot's pre-check: the first (up to 31) bits after this node's byte of the tail / skipped path,
            // and a flag in the lowest bit when there are more.
            var childSlot = node.SlotAt(slot);
            var (childId, end) = child is TrieNode n ? (ToId(n.Key), n.Depth) : (((ServiceEntry)child).Prefix.Id, ((ServiceEntry)child).Prefix.Length);
            var checkedBits = Math.Min(31, end - (d + 8));
            var expectedCheck = checkedBits == 0 ? 0u : (uint)childId.GetBits(d + 8, checkedBits) << (32 - checkedBits);
            Assert.Equal(checkedBits, childSlot.CheckedBits);
            Assert.Equal(expectedCheck | (end - (d + 8) > 31 ? 1u : 0u), childSlot.Check);
            if (child is TrieNode childNode)
            {
                Assert.Equal(childNode.Depth, childSlot.ChildDepth);
                for (var g = 0; g < 64; g++)
                {
                    var any = Enumerable.Range(4 * g, 4).Any(s => childNode.ChildAt(s) is not null || childNode.LocalBest(s) is not null);
                    Assert.Equal(any, ((childSlot.Summary >> g) & 1) != 0);
                }
            }

            if (child is ServiceEntry tail)
            {
                Assert.True(tail.Prefix.Length >= d + 8);
                Assert.True(Matches(tail.Prefix.Id, node));
                Assert.Equal(slot, (int)tail.Prefix.Id.GetBits(d, 8));
                entries.Add(tail);
            }
            else
            {
                var next = Assert.IsType<TrieNode>(child);
                Assert.True(next.Depth >= d + 8);
                Assert.True(ToId(next.Key).CommonPrefixLength(nodeId) >= d);
                Assert.Equal(slot, next.Key.ByteAt(d));
                entries.AddRange(CheckNode(next, isRoot: false, minDepth: d + 8));
            }
        }

        Assert.Equal(children, node.ChildCount);
        for (var w = 0; w < 8; w++)
        {
            Assert.Equal(Enumerable.Range(32 * w, 32).Count(s => node.ChildSlots.Test(s)), node.Children[w].Length);
        }
        Assert.Equal(entries.Count, node.Count);
        Assert.Equal(entries.Count, entries.Select(e => e.Prefix).Distinct().Count());
        if (!isRoot)
        {
            Assert.True(node.Count >= 2, "a node must hold at least two prefixes");
            Assert.False(node.Self is null && node.Interior.Length == 0 && node.ChildCount == 1, "a pass-through node must be collapsed");
            var lcp = 256;
            var minLength = 256;
            foreach (var e in entries)
            {
                lcp = Math.Min(lcp, e.Prefix.Id.CommonPrefixLength(entries[0].Prefix.Id));
                minLength = Math.Min(minLength, e.Prefix.Length);
            }

            Assert.Equal(Math.Min(lcp, minLength) & ~7, d);
        }

        return entries;
    }
}
