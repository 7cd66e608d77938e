namespace Serval.Stack.Services;

/// <summary>
/// One immutable node of the service trie: a 256-way branch on the byte at bit <see cref="Depth"/> of the key,
/// reached only by keys that share the node's first <see cref="Depth"/> bits (<see cref="Key"/>). Between a
/// parent at depth p and its child the bits [p + 8, child depth) are skipped (path compression) and checked
/// against <see cref="Key"/> on the way down.
/// </summary>
/// <remarks>
/// Prefixes whose length falls inside the node's byte — <see cref="Self"/> (length = depth) and
/// <see cref="Interior"/> (depth &lt; length &lt; depth + 8) — are expanded into the 256 slots: for each slot the
/// longest of them that covers it, stored run-length encoded (<see cref="RunStarts"/> marks where the value
/// changes, <see cref="Runs"/> holds one value per run). Longer prefixes live below: a child slot holds either a
/// node or, when only one prefix lives below that slot, the entry itself (a tail, checked in full on lookup).
/// The shape is canonical — a node exists only where at least two prefixes branch or end within its byte —
/// so the trie depends only on the set of prefixes, not on the order of updates.
/// </remarks>
internal sealed class TrieNode
{
    /// <summary>Bits [0, Depth) shared by every prefix below; later bits are zero.</summary>
    public readonly KeyWords Key;

    /// <summary>The bit offset of the byte this node branches on (a multiple of 8, at most 248).</summary>
    public readonly int Depth;

    /// <summary>Number of prefixes in this subtree.</summary>
    public readonly int Count;

    /// <summary>The entry whose prefix is exactly <see cref="Key"/>/<see cref="Depth"/>, if any.</summary>
    public readonly ServiceEntry? Self;

    /// <summary>Entries with a length strictly inside the node's byte, ordered by length, then id.</summary>
    public readonly ServiceEntry[] Interior;

    /// <summary>Slots that have a child.</summary>
    public readonly Bitmap256 ChildSlots;

    /// <summary>One element per set slot of <see cref="ChildSlots"/>, in slot order: a <see cref="TrieNode"/> or a tail <see cref="ServiceEntry"/>.</summary>
    public readonly object[] Children;

    /// <summary>Slots covered by <see cref="Self"/> or an interior entry.</summary>
    public readonly Bitmap256 Covered;

    /// <summary>Slots where the best local entry differs from the previous slot's (slot 0 always starts a run).</summary>
    public readonly Bitmap256 RunStarts;

    /// <summary>The best local entry of each run (null for uncovered runs).</summary>
    public readonly ServiceEntry?[] Runs;

    [ThreadStatic]
    private static ServiceEntry?[]? _paint;

    private TrieNode(
        KeyWords key,
        int depth,
        int count,
        ServiceEntry? self,
        ServiceEntry[] interior,
        Bitmap256 childSlots,
        object[] children,
        Bitmap256 covered,
        Bitmap256 runStarts,
        ServiceEntry?[] runs)
    {
        Key = key;
        Depth = depth;
        Count = count;
        Self = self;
        Interior = interior;
        ChildSlots = childSlots;
        Children = children;
        Covered = covered;
        RunStarts = runStarts;
        Runs = runs;
    }

    /// <summary>A node with nothing in it at <paramref name="depth"/> on the path <paramref name="key"/>.</summary>
    public static TrieNode Empty(KeyWords key, int depth) =>
        new(key.Truncate(depth), depth, 0, null, [], default, [], default, default(Bitmap256).With(0), [null]);

    /// <summary>The best local entry for <paramref name="slot"/> (null when <see cref="Covered"/> does not contain it).</summary>
    public ServiceEntry? LocalBest(int slot) => Runs[RunStarts.RankThrough(slot) - 1];

    /// <summary>The child at <paramref name="slot"/>, or null.</summary>
    public object? ChildAt(int slot) => ChildSlots.Test(slot) ? Children[ChildSlots.RankBefore(slot)] : null;

    /// <summary>This node with other local entries (the run encoding is recomputed).</summary>
    public TrieNode WithLocal(ServiceEntry? self, ServiceEntry[] interior)
    {
        var count = Count - (Self is null ? 0 : 1) - Interior.Length + (self is null ? 0 : 1) + interior.Length;
        var paint = _paint ??= new ServiceEntry?[256];
        Array.Fill(paint, self);
        foreach (var entry in interior)
        {
            // Shortest first, so longer prefixes overwrite the slots they share with shorter ones.
            var extra = entry.Prefix.Length - Depth;
            var first = (int)entry.Prefix.Id.GetBits(Depth, extra) << (8 - extra);
            Array.Fill(paint, entry, first, 1 << (8 - extra));
        }

        Bitmap256 covered = default, starts = default;
        var runs = new List<ServiceEntry?>();
        for (var slot = 0; slot < 256; slot++)
        {
            if (paint[slot] is not null)
            {
                covered = covered.With(slot);
            }

            if (slot == 0 || !ReferenceEquals(paint[slot], paint[slot - 1]))
            {
                starts = starts.With(slot);
                runs.Add(paint[slot]);
            }
        }

        Array.Clear(paint);
        return new TrieNode(Key, Depth, count, self, interior, ChildSlots, Children, covered, starts, [.. runs]);
    }

    /// <summary>This node with the child at <paramref name="slot"/> set, replaced or (when null) removed.</summary>
    public TrieNode WithChild(int slot, object? child)
    {
        var present = ChildSlots.Test(slot);
        var index = ChildSlots.RankBefore(slot);
        object[] children;
        Bitmap256 slots;
        int count;
        if (present)
        {
            count = Count - CountOf(Children[index]) + CountOf(child);
            if (child is null)
            {
                children = new object[Children.Length - 1];
                Array.Copy(Children, children, index);
                Array.Copy(Children, index + 1, children, index, Children.Length - index - 1);
                slots = ChildSlots.Without(slot);
            }
            else
            {
                children = (object[])Children.Clone();
                children[index] = child;
                slots = ChildSlots;
            }
        }
        else
        {
            if (child is null)
            {
                return this;
            }

            count = Count + CountOf(child);
            children = new object[Children.Length + 1];
            Array.Copy(Children, children, index);
            children[index] = child;
            Array.Copy(Children, index, children, index + 1, Children.Length - index);
            slots = ChildSlots.With(slot);
        }

        return new TrieNode(Key, Depth, count, Self, Interior, slots, children, Covered, RunStarts, Runs);
    }

    private static int CountOf(object? item) => item switch
    {
        null => 0,
        TrieNode node => node.Count,
        _ => 1,
    };
}
