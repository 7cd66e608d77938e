namespace Serval.Stack.Services;

/// <summary>
/// The prefixes that end inside one trie node's byte, and their expansion over the node's 256 slots. Kept apart
/// from <see cref="TrieNode"/> so that the fields a lookup reads at every level stay within two cache lines;
/// this part is read once per lookup, for the deepest node that covered the key.
/// </summary>
internal sealed class LocalEntries
{
    private LocalEntries(ServiceEntry? self, ServiceEntry[] interior, Bitmap256 covered, Bitmap256 runStarts, ServiceEntry?[] runs)
    {
        Self = self;
        Interior = interior;
        Covered = covered;
        RunStarts = runStarts;
        Runs = runs;
    }

    /// <summary>No local prefixes.</summary>
    public static LocalEntries None { get; } = new(null, [], default, default(Bitmap256).With(0), [null]);

    /// <summary>The entry whose prefix is exactly the node's path (length = depth), if any.</summary>
    public ServiceEntry? Self { get; }

    /// <summary>Entries with a length strictly inside the node's byte, ordered by length, then id.</summary>
    public ServiceEntry[] Interior { get; }

    /// <summary>Number of local entries.</summary>
    public int Count => (Self is null ? 0 : 1) + Interior.Length;

    /// <summary>Slots covered by a local entry (copied into the node for the lookup path).</summary>
    public Bitmap256 Covered { get; }

    /// <summary>Slots where the best local entry differs from the previous slot's (slot 0 always starts a run).</summary>
    public Bitmap256 RunStarts { get; }

    /// <summary>The best local entry of each run (null for uncovered runs).</summary>
    public ServiceEntry?[] Runs { get; }

    /// <summary>The longest local entry that covers <paramref name="slot"/>, or null.</summary>
    public ServiceEntry? Best(int slot) => Runs[RunStarts.RankThrough(slot) - 1];

    /// <summary>Expands <paramref name="self"/> and <paramref name="interior"/> (in canonical order) for a node at <paramref name="depth"/>.</summary>
    public static LocalEntries Create(int depth, ServiceEntry? self, ServiceEntry[] interior)
    {
        if (self is null && interior.Length == 0)
        {
            return None;
        }

        // Paint indexes, not references (no write barrier per slot): 0 = nothing, 1 = self, 2 + i = interior[i].
        Span<ushort> paint = stackalloc ushort[256];
        paint.Fill(self is null ? (ushort)0 : (ushort)1);
        for (var i = 0; i < interior.Length; i++)
        {
            // Shortest first, so longer prefixes overwrite the slots they share with shorter ones.
            var entry = interior[i];
            var extra = entry.Prefix.Length - depth;
            var first = (int)entry.Prefix.Id.GetBits(depth, extra) << (8 - extra);
            paint.Slice(first, 1 << (8 - extra)).Fill((ushort)(2 + i));
        }

        Span<ulong> covered = stackalloc ulong[4];
        Span<ulong> starts = stackalloc ulong[4];
        covered.Clear();
        starts.Clear();
        var runCount = 0;
        for (var slot = 0; slot < 256; slot++)
        {
            if (paint[slot] != 0)
            {
                covered[slot >> 6] |= 1UL << slot;
            }

            if (slot == 0 || paint[slot] != paint[slot - 1])
            {
                starts[slot >> 6] |= 1UL << slot;
                runCount++;
            }
        }

        var runs = new ServiceEntry?[runCount];
        var run = 0;
        for (var slot = 0; slot < 256; slot++)
        {
            if (slot == 0 || paint[slot] != paint[slot - 1])
            {
                runs[run++] = paint[slot] switch
                {
                    0 => null,
                    1 => self,
                    var i => interior[i - 2],
                };
            }
        }

        return new LocalEntries(self, interior, new Bitmap256(covered), new Bitmap256(starts), runs);
    }
}
