namespace Serval.Stack.Services;

/// <summary>
/// One published, immutable state of a <see cref="ServiceTable"/>: the main trie and its top index, the DEMUX-only tries used by
/// end-host demultiplexing, the entry count and a version number. Readers take one reference to it and see a
/// consistent table for as long as they hold it.
/// </summary>
internal sealed class TableVersion
{
    public TableVersion(TrieNode root, TopIndex top, TrieNode tcp, TrieNode udp, TrieNode anyDemux, int count, long number)
    {
        Root = root;
        Top = top;
        Tcp = tcp;
        Udp = udp;
        AnyDemux = anyDemux;
        Count = count;
        Number = number;
    }

    /// <summary>The version of an empty table.</summary>
    public static TableVersion Empty { get; } =
        new(PrefixTrie.EmptyRoot, TopIndex.Empty, PrefixTrie.EmptyRoot, PrefixTrie.EmptyRoot, PrefixTrie.EmptyRoot, 0, 0);

    /// <summary>Every entry.</summary>
    public TrieNode Root { get; }

    /// <summary>The direct index on the first 16 bits of <see cref="Root"/>.</summary>
    public TopIndex Top { get; }

    /// <summary>Entries that hold a DEMUX rule for protocol 6.</summary>
    public TrieNode Tcp { get; }

    /// <summary>Entries that hold a DEMUX rule for protocol 17.</summary>
    public TrieNode Udp { get; }

    /// <summary>Entries that hold any DEMUX rule.</summary>
    public TrieNode AnyDemux { get; }

    /// <summary>Number of entries.</summary>
    public int Count { get; }

    /// <summary>Incremented by every published change.</summary>
    public long Number { get; }
}
