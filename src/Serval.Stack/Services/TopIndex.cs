using System.Runtime.CompilerServices;
using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>
/// A direct index on the first 16 bits of the key, derived from the trie, that replaces its first two levels on
/// the lookup path: one entry per 16-bit value holds the longest prefix of 8 to 16 bits that contains it
/// (pushed down from the trie) and the trie position at depth 16 or more that the value leads to (a node or a
/// tail, with the same pre-checks as a <see cref="TrieNode.ChildSlot"/>). Prefixes shorter than 8 bits stay in the
/// root node. For most keys a lookup is then one access to this index; the rest continue in the trie from there.
/// </summary>
/// <remarks>
/// Immutable and persistent like the trie: the 65,536 entries are kept in 2,048 arrays of 32 ("pages"), whose
/// references are kept in 32 arrays of 64 held inline by the index. An update recomputes only the entries under
/// the changed prefix (one for a prefix longer than 16 bits, up to 256 for one of 8 to 16 bits, none for a shorter
/// one) and copies the pages that hold them and one array of page references (about 1.5 KB in all). A page with
/// nothing in it is null. Because the trie's shape is canonical, an entry depends only on the prefixes under its 16-bit value, which
/// is what makes that update rule exact.
/// </remarks>
internal sealed class TopIndex
{
    /// <summary>An index for an empty trie.</summary>
    public static readonly TopIndex Empty = new(default);

    private readonly PageChunks _chunks;

    private TopIndex(in PageChunks chunks) => _chunks = chunks;

    /// <summary>Builds the index of <paramref name="root"/> from scratch.</summary>
    public static TopIndex Build(TrieNode root)
    {
        PageChunks chunks = default;
        for (var b0 = 0; b0 < 256; b0++)
        {
            if (root.ChildAt(b0) is not null)
            {
                Recompute(ref chunks, root, b0, 0, 256);
            }
        }

        return new TopIndex(chunks);
    }

    /// <summary>Longest-prefix match of <paramref name="id"/> in <paramref name="root"/>, which this index was built from.</summary>
    public ServiceEntry? Lookup(TrieNode root, in ServiceId id)
    {
        var key = new KeyWords(id);
        var value = (int)(id.GetWord(0) >> 48);
        var page = PageOf(value);
        if (page is null)
        {
            return RootBest(root, value);
        }

        ref readonly var entry = ref page[value & 31];
        var best = entry.Best;
        if (entry.Slot.Item is null)
        {
            return best ?? RootBest(root, value);
        }

        switch (PrefixTrie.Through(entry.Slot, 16, key, id, out var next, out var tail))
        {
            case PrefixTrie.Step.Down:
                return PrefixTrie.WalkFrom(next!, key, id, best ?? RootBest(root, value));
            case PrefixTrie.Step.Tail:
                return tail;
            default:
                return best ?? RootBest(root, value);
        }
    }

    /// <summary>The 32 entries that hold the 16-bit <paramref name="value"/> (at index value % 32), or null when they are all empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Entry[]? PageOf(int value) => _chunks[value >> 11]?[(value >> 5) & 63];

    /// <summary>The entry of the 16-bit value (<paramref name="b0"/>, <paramref name="b1"/>); default when its page is empty.</summary>
    public Entry EntryAt(int b0, int b1)
    {
        var value = (b0 << 8) | b1;
        var page = PageOf(value);
        return page is null ? default : page[value & 31];
    }

    /// <summary>The index of <paramref name="newRoot"/>, given that it differs from this index's trie only by the prefix <paramref name="changed"/>.</summary>
    public TopIndex Update(TrieNode newRoot, ServicePrefix changed)
    {
        if (changed.Length < 8)
        {
            return this; // only the root's own entries changed
        }

        var b0 = (int)changed.Id.GetBits(0, 8);
        int first, count;
        if (changed.Length >= 16)
        {
            first = (int)changed.Id.GetBits(8, 8);
            count = 1;
        }
        else
        {
            var extra = changed.Length - 8;
            first = extra == 0 ? 0 : (int)changed.Id.GetBits(8, extra) << (8 - extra);
            count = 1 << (8 - extra);
        }

        var chunks = _chunks;
        Recompute(ref chunks, newRoot, b0, first, count);
        return new TopIndex(chunks);
    }

    /// <summary>The best prefix shorter than 8 bits (the root's own entries) for the 16-bit value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ServiceEntry? RootBest(TrieNode root, int value) =>
        root.Covered.Test(value >> 8) ? root.LocalBest(value >> 8) : null;

    /// <summary>Recomputes the entries (<paramref name="b0"/>, b1) for b1 in [<paramref name="first"/>, first + <paramref name="count"/>).</summary>
    private static void Recompute(ref PageChunks chunks, TrieNode root, int b0, int first, int count)
    {
        var chunkIndex = b0 >> 3; // 8 first bytes (2,048 values) per chunk
        var chunk = chunks[chunkIndex] is { } existing ? (Entry[]?[])existing.Clone() : new Entry[]?[64];
        var top = root.ChildAt(b0) is not null;
        for (var page = first >> 5; page <= (first + count - 1) >> 5; page++)
        {
            var slot = ((b0 & 7) << 3) | page; // page within the chunk
            var entries = chunk[slot] is { } previous ? (Entry[])previous.Clone() : new Entry[32];
            for (var b1 = Math.Max(first, page * 32); b1 < Math.Min(first + count, (page + 1) * 32); b1++)
            {
                entries[b1 & 31] = top ? Compute(root, b0, b1) : default;
            }

            chunk[slot] = Array.TrueForAll(entries, e => e.Best is null && e.Slot.Item is null) ? null : entries;
        }

        chunks[chunkIndex] = Array.TrueForAll(chunk, q => q is null) ? null : chunk;
    }

    /// <summary>The entry for the 16-bit value (<paramref name="b0"/>, <paramref name="b1"/>), read off the trie.</summary>
    private static Entry Compute(TrieNode root, int b0, int b1)
    {
        ServiceEntry? best = null;
        object? item = null;
        switch (root.ChildAt(b0))
        {
            case ServiceEntry tail:
                if (tail.Prefix.Length <= 16)
                {
                    if (tail.Prefix.Length == 8 || (int)tail.Prefix.Id.GetBits(8, tail.Prefix.Length - 8) == b1 >> (16 - tail.Prefix.Length))
                    {
                        best = tail;
                    }
                }
                else if ((int)tail.Prefix.Id.GetBits(8, 8) == b1)
                {
                    item = tail;
                }

                break;

            case TrieNode node when node.Depth == 8:
                best = node.Covered.Test(b1) ? node.LocalBest(b1) : null;
                switch (node.ChildAt(b1))
                {
                    case ServiceEntry tail when tail.Prefix.Length == 16:
                        best = tail;
                        break;
                    case { } child:
                        item = child; // a longer tail, or a node at depth 16 or more
                        break;
                }

                break;

            case TrieNode node when node.Key.ByteAt(8) == b1:
                // A node at depth 16 or more reached straight from the root: every prefix under it is that long.
                item = node;
                break;
        }

        return new Entry(item is null ? default : TrieNode.ChildSlot.For(item, 16), best);
    }

    /// <summary>One 16-bit value's entry: the trie position it leads to (if any) and the best prefix of 8–16 bits.</summary>
    /// <param name="Slot">The position at depth ≥ 16, checked from bit 16 on (a default slot when there is none).</param>
    /// <param name="Best">The longest prefix of 8 to 16 bits containing the value.</param>
    internal readonly record struct Entry(TrieNode.ChildSlot Slot, ServiceEntry? Best);

    /// <summary>Thirty-two arrays of 64 page references (null when empty).</summary>
    [InlineArray(32)]
    private struct PageChunks
    {
        private Entry[]?[]? _chunk;
    }
}
