using System.Diagnostics.CodeAnalysis;
using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>
/// The Serval service table (docs/protocol.md §7): rules keyed by serviceID prefix (0–256 bits), resolved by
/// longest-prefix match. Each entry holds priority sets of FORWARD, DEMUX, DELAY and DROP targets; only the
/// highest-priority set is used, by weighted random choice (anycast) or as a whole (all mode).
/// </summary>
/// <remarks>
/// <para>
/// Reads (<see cref="Lookup"/>, <see cref="TryLookupDemux"/>, <see cref="TryGetExact"/>, <see cref="Entries"/>,
/// <see cref="Count"/>, <see cref="Version"/>, selection and the counter methods) take no lock, never wait and
/// allocate nothing (except the <see cref="Entries"/> enumerator), from any number of threads. Each read works on
/// one published immutable version, so it sees the table either before or after a concurrent update, never a
/// mix. Updates come from one writer at a time (the engine's thread; a concurrent second writer gets an InvalidOperationException); each builds a new version by copying
/// only the trie nodes on the changed path and publishes it with one reference write.
/// </para>
/// <para>
/// Updates report misuse and ordinary failures through <see cref="ServiceTableResult"/>; they do not throw.
/// Time is the caller's monotonic <c>now</c>.
/// </para>
/// </remarks>
public sealed partial class ServiceTable
{
    /// <summary>Priority of the DEMUX rule a socket's bind installs (the reference's value).</summary>
    public const uint SocketPriority = 32000;

    /// <summary>Weight of the DEMUX rule a socket's bind installs (the reference's value).</summary>
    public const uint SocketWeight = 1024;

    /// <summary>Priority of the default FORWARD rule to an interface's broadcast address.</summary>
    public const uint BroadcastPriority = 1;

    /// <summary>Weight of the default FORWARD rule to an interface's broadcast address.</summary>
    public const uint BroadcastWeight = 1;

    /// <summary>
    /// Priority of a host's configured default router rule (FORWARD /0 to a service router): above the broadcast rule,
    /// so a host with a router sends its SYNs there, and the broadcast rule is the fallback.
    /// </summary>
    public const uint DefaultRouterPriority = 10;

    /// <summary>Priority used by <see cref="Add"/> when none is given.</summary>
    public const uint DefaultPriority = 1;

    /// <summary>Weight used by <see cref="Add"/> when none is given.</summary>
    public const uint DefaultWeight = 1;

    /// <summary>Largest accepted priority (2³¹ − 1, so priorities stay representable as non-negative 32-bit integers).</summary>
    public const uint MaxPriority = int.MaxValue;

    /// <summary>Largest accepted weight (2³¹ − 1).</summary>
    public const uint MaxWeight = int.MaxValue;

    private int _writerThread;
    private int _writerDepth;
    private TableVersion _current = TableVersion.Empty;

    /// <summary>
    /// Called by the writer, during an update, with the prefix of every entry the update changes (rules added,
    /// removed, modified or expired). The engine uses it to re-check the packets its DELAY rules hold; the callback
    /// must not update the table.
    /// </summary>
    internal Action<ServicePrefix>? PrefixChanged { get; set; }

    /// <summary>Table-wide counters: every resolution and drop recorded through this table.</summary>
    public ServiceCounters Counters { get; } = new();

    /// <summary>Number of entries (prefixes) in the current version.</summary>
    public int Count => CrossThread.Read(ref _current).Count;

    /// <summary>The current version number; every applied update increments it.</summary>
    public long Version => CrossThread.Read(ref _current).Number;

    /// <summary>
    /// Every entry of the current version (a snapshot: later updates do not affect an enumeration in progress),
    /// depth first in bit order.
    /// </summary>
    public IEnumerable<ServiceEntry> Entries => PrefixTrie.Enumerate(CrossThread.Read(ref _current).Root);

    /// <summary>The current published version (tests and benchmarks look inside it).</summary>
    /// <summary>
    /// The number of trie nodes in the current version: a diagnostic of the table's memory (each node holds 256 child
    /// slots). Walks the whole trie; not for a hot path.
    /// </summary>
    public int CountTrieNodes() => PrefixTrie.CountNodes(CurrentVersion.Root);

    internal TableVersion CurrentVersion => CrossThread.Read(ref _current);

    /// <summary>Longest-prefix match of <paramref name="serviceId"/> over all entries; null when nothing matches.</summary>
    public ServiceEntry? Lookup(ServiceId serviceId)
    {
        var version = CrossThread.Read(ref _current);
        return version.Top.Lookup(version.Root, serviceId);
    }

    /// <summary>
    /// Longest-prefix match of every serviceID in <paramref name="serviceIds"/> into the same index of
    /// <paramref name="results"/> (the answers <see cref="Lookup"/> would give, all from one version). The memory
    /// accesses of up to 16 keys overlap, which pays off when keys resolve to long prefixes (packets for
    /// registered services); keys that stop near the top are as fast one by one. Allocates nothing.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="serviceIds"/>.</exception>
    public void LookupBatch(ReadOnlySpan<ServiceId> serviceIds, Span<ServiceEntry?> results)
    {
        if (results.Length < serviceIds.Length)
        {
            throw new ArgumentException("The results span is shorter than the serviceIDs span.", nameof(results));
        }

        var version = CrossThread.Read(ref _current);
        PrefixTrie.LookupBatch(version.Root, version.Top, serviceIds, results);
    }

    /// <summary>The entry whose prefix is exactly <paramref name="prefix"/>.</summary>
    public bool TryGetExact(ServicePrefix prefix, [NotNullWhen(true)] out ServiceEntry? entry)
    {
        entry = PrefixTrie.Find(CrossThread.Read(ref _current).Root, prefix);
        return entry is not null;
    }

    /// <summary>
    /// End-host demultiplexing: longest-prefix match of <paramref name="serviceId"/> restricted to entries that hold
    /// a DEMUX rule for <paramref name="protocol"/> (6 or 17; 0 accepts either). <paramref name="rule"/> is that
    /// entry's highest-priority DEMUX rule for the protocol. A stream and a datagram socket may share a prefix;
    /// each protocol finds its own socket.
    /// </summary>
    public bool TryLookupDemux(
        ServiceId serviceId,
        byte protocol,
        [NotNullWhen(true)] out ServiceEntry? entry,
        [NotNullWhen(true)] out ServiceRule? rule)
    {
        var version = CrossThread.Read(ref _current);
        var root = protocol switch
        {
            ServiceTarget.TcpProtocol => version.Tcp,
            ServiceTarget.UdpProtocol => version.Udp,
            0 => version.AnyDemux,
            _ => null,
        };
        var found = root is null ? null : PrefixTrie.Lookup(root, serviceId);
        rule = found?.GetDemux(protocol);
        entry = rule is null ? null : found;
        return entry is not null && rule is not null;
    }

    /// <summary>
    /// Anycast: picks one rule of <paramref name="entry"/>'s top priority set at random in proportion to the
    /// weights. False only when <paramref name="entry"/> is null. All mode uses
    /// <see cref="ServiceEntry.TopSet"/>'s <see cref="ServicePrioritySet.Rules"/> instead. The table does not look
    /// at <see cref="ServiceFlags.Multicast"/>; the caller chooses the mode.
    /// </summary>
    public bool TrySelect(ServiceEntry? entry, IRandomSource random, [NotNullWhen(true)] out ServiceRule? rule)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (entry is null)
        {
            rule = null;
            return false;
        }

        var set = entry.TopSet;
        rule = set.Rules.Length == 1 ? set.Rules[0] : set.Pick(random.NextBelow(set.TotalWeight));
        return true;
    }

    /// <summary>
    /// Counts one packet of <paramref name="bytes"/> resolved by <paramref name="rule"/> (rule, entry and table
    /// counters) and marks the rule used at <paramref name="now"/> (which restarts its idle timeout).
    /// </summary>
    public void RecordResolved(ServiceRule rule, int bytes, TimeSpan now)
    {
        ArgumentNullException.ThrowIfNull(rule);
        bytes = Math.Max(bytes, 0);
        rule.Counters.RecordResolved(bytes, now);
        rule.EntryCounters.RecordResolved(bytes, now);
        Counters.RecordResolved(bytes, now);
    }

    /// <summary>Counts one dropped packet of <paramref name="bytes"/> against <paramref name="entry"/> (if any) and the table.</summary>
    public void RecordDropped(ServiceEntry? entry, int bytes)
    {
        bytes = Math.Max(bytes, 0);
        entry?.Counters.RecordDropped(bytes);
        Counters.RecordDropped(bytes);
    }

    /// <summary>Counts one packet of <paramref name="bytes"/> dropped by <paramref name="rule"/> (for example a DROP rule): rule, entry and table counters.</summary>
    public void RecordDropped(ServiceRule rule, int bytes)
    {
        ArgumentNullException.ThrowIfNull(rule);
        bytes = Math.Max(bytes, 0);
        rule.Counters.RecordDropped(bytes);
        rule.EntryCounters.RecordDropped(bytes);
        Counters.RecordDropped(bytes);
    }
}
