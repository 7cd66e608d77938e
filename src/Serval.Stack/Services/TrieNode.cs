namespace Serval.Stack.Services;

/// <summary>
/// One immutable node of the service trie: a 256-way branch on the byte at bit <see cref="Depth"/> of the key,
/// reached only by keys that share the node's first <see cref="Depth"/> bits (<see cref="Key"/>). Between a
/// parent at depth p and its child the bits [p + 8, child depth) are skipped (path compression); the parent's
/// <see cref="ChildSlot"/> checks the first 31 of them, and a lookup compares <see cref="Key"/> only when more
/// were skipped.
/// </summary>
/// <remarks>
/// Prefixes whose length falls inside the node's byte (<see cref="LocalEntries"/>) are expanded into the 256 slots:
/// <see cref="Covered"/> says which slots have one. Longer prefixes live below: a child slot holds either a node
/// or, when only one prefix lives below that slot, the entry itself (a tail). The shape is canonical — a node
/// exists only where at least two prefixes branch or end within its byte — so the trie depends only on the set
/// of prefixes, not on the order of updates. The children are kept in eight arrays, one per 32 slots, so that an
/// update copies at most 32 slots of a wide node rather than 256; the index inside an array is one popcount.
/// </remarks>
internal sealed class TrieNode
{
    /// <summary>The children of slots 0–31, 32–63, …, 224–255: eight arrays, each in slot order.</summary>
    public readonly Chunks Children;

    /// <summary>The prefixes that end inside this node's byte.</summary>
    public readonly LocalEntries Local;

    /// <summary>The bit offset of the byte this node branches on (a multiple of 8, at most 248).</summary>
    public readonly int Depth;

    /// <summary>Number of prefixes in this subtree.</summary>
    public readonly int Count;

    /// <summary>Slots that have a child.</summary>
    public readonly Bitmap256 ChildSlots;

    /// <summary>Slots covered by a local entry (a copy of <see cref="LocalEntries.Covered"/>).</summary>
    public readonly Bitmap256 Covered;

    /// <summary>Bits [0, Depth) shared by every prefix below; later bits are zero.</summary>
    public readonly KeyWords Key;

    private static readonly Chunks _noChildren = CreateNoChildren();

    private TrieNode(KeyWords key, int depth, int count, LocalEntries local, Bitmap256 childSlots, in Chunks children)
    {
        Key = key;
        Depth = depth;
        Count = count;
        Local = local;
        Covered = local.Covered;
        ChildSlots = childSlots;
        Children = children;
    }

    /// <summary>The entry whose prefix is exactly <see cref="Key"/>/<see cref="Depth"/>, if any.</summary>
    public ServiceEntry? Self => Local.Self;

    /// <summary>Entries with a length strictly inside the node's byte, ordered by length, then id.</summary>
    public ServiceEntry[] Interior => Local.Interior;

    /// <summary>Number of children.</summary>
    public int ChildCount => ChildSlots.Count;

    /// <summary>A node with nothing in it at <paramref name="depth"/> on the path <paramref name="key"/>.</summary>
    public static TrieNode Empty(KeyWords key, int depth) => new(key.Truncate(depth), depth, 0, LocalEntries.None, default, _noChildren);

    /// <summary>The best local entry for <paramref name="slot"/> (null when <see cref="Covered"/> does not contain it).</summary>
    public ServiceEntry? LocalBest(int slot) => Local.Best(slot);

    /// <summary>The child slot of <paramref name="slot"/>, which must be in <see cref="ChildSlots"/>.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public ref readonly ChildSlot SlotAt(int slot) => ref Children[slot >> 5][ChildSlots.RankInHalf(slot)];

    /// <summary>The child at <paramref name="slot"/>, or null.</summary>
    public object? ChildAt(int slot) => ChildSlots.Test(slot) ? SlotAt(slot).Item : null;

    /// <summary>The child with the lowest slot (the node must have one).</summary>
    public object FirstChild() => SlotAt(ChildSlots.NextSetAtOrAfter(0)).Item;

    /// <summary>This node with other local entries.</summary>
    public TrieNode WithLocal(ServiceEntry? self, ServiceEntry[] interior)
    {
        var count = Count - Local.Count + (self is null ? 0 : 1) + interior.Length;
        return new TrieNode(Key, Depth, count, LocalEntries.Create(Depth, self, interior), ChildSlots, Children);
    }

    /// <summary>This node with the child at <paramref name="slot"/> set, replaced or (when null) removed.</summary>
    public TrieNode WithChild(int slot, object? child)
    {
        var present = ChildSlots.Test(slot);
        var old = Children[slot >> 5];
        var index = ChildSlots.RankInHalf(slot);
        ChildSlot[] chunk;
        Bitmap256 slots;
        int count;
        if (present)
        {
            count = Count - CountOf(old[index].Item) + CountOf(child);
            if (child is null)
            {
                chunk = old.Length == 1 ? [] : new ChildSlot[old.Length - 1];
                Array.Copy(old, chunk, index);
                Array.Copy(old, index + 1, chunk, index, old.Length - index - 1);
                slots = ChildSlots.Without(slot);
            }
            else
            {
                chunk = (ChildSlot[])old.Clone();
                chunk[index] = SlotFor(child);
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
            chunk = new ChildSlot[old.Length + 1];
            Array.Copy(old, chunk, index);
            chunk[index] = SlotFor(child);
            Array.Copy(old, index, chunk, index + 1, old.Length - index);
            slots = ChildSlots.With(slot);
        }

        var children = Children;
        children[slot >> 5] = chunk;
        return new TrieNode(Key, Depth, count, Local, slots, children);
    }

    private static Chunks CreateNoChildren()
    {
        Chunks none = default;
        for (var i = 0; i < 8; i++)
        {
            none[i] = [];
        }

        return none;
    }

    private static int CountOf(object? item) => item switch
    {
        null => 0,
        TrieNode node => node.Count,
        _ => 1,
    };

    /// <summary>The slot for <paramref name="child"/> of this node (its checks start right after this node's byte).</summary>
    private ChildSlot SlotFor(object child) => ChildSlot.For(child, Depth + 8);

    /// <summary>
    /// A child, with what a lookup needs to reject most keys without touching it. The key's 32 bits at offset
    /// depth + 8, masked to their first <see cref="CheckedBits"/>, must equal <see cref="Check"/> apart from its
    /// lowest bit, which is <see cref="MoreBits"/> when the child has more than that to compare (a tail longer
    /// than that, or a node that skips more than that). For a child node, <see cref="Summary"/> bit g says
    /// whether it has a child or a local entry in slots 4g to 4g + 3 of its byte (at <see cref="ChildDepth"/>):
    /// a clear bit means the node has nothing for the key.
    /// </summary>
    internal readonly record struct ChildSlot(object Item, uint Check, byte CheckedBits, byte ChildDepth, ulong Summary)
    {
        /// <summary>How many bits the slot checks at most (the 32nd, lowest, bit is the flag).</summary>
        public const int MaxCheckedBits = 31;

        /// <summary>The flag in <see cref="Check"/>: more bits than the slot checks must be compared.</summary>
        public const uint MoreBits = 1;

        /// <summary>
        /// The slot for <paramref name="child"/> reached with the key's bits [0, <paramref name="start"/>) already
        /// matched: the bits it must have from <paramref name="start"/> on (up to 31 of them: the rest of a tail's
        /// prefix, or the path a child node skips), whether there are more, and for a child node its depth and a
        /// summary of the slots where it has something.
        /// </summary>
        public static ChildSlot For(object child, int start)
        {
            var node = child as TrieNode;
            var (key, end) = node is not null
                ? (node.Key, node.Depth)
                : (new KeyWords(((ServiceEntry)child).Prefix.Id), ((ServiceEntry)child).Prefix.Length);
            var bits = Math.Min(MaxCheckedBits, end - start);
            var more = end - start > MaxCheckedBits ? MoreBits : 0u;
            return new ChildSlot(
                child,
                (key.Bits32At(start) & MaskOf(bits)) | more,
                (byte)bits,
                (byte)(node?.Depth ?? 0),
                node?.ChildSlots.FoldByFour(node.Covered) ?? 0);
        }

        /// <summary>The mask that keeps the first <paramref name="bits"/> (0–31) of 32.</summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public static uint MaskOf(int bits) => (uint)((ulong)uint.MaxValue << (32 - bits));
    }

    /// <summary>Eight child arrays, one per 32 slots.</summary>
    [System.Runtime.CompilerServices.InlineArray(8)]
    internal struct Chunks
    {
        private ChildSlot[] _chunk;
    }
}
