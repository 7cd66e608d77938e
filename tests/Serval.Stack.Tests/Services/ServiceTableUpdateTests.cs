using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

/// <summary>Add, remove, modify and RemoveInterface, their error results, and the reference's bugs 9, 12 and 15 (numbered as in docs/protocol.md, "Differences").</summary>
public sealed class ServiceTableUpdateTests
{
    private static readonly ServicePrefix _echo = ServicePrefix.Parse("0x0e0c/16");
    private static readonly LinkAddress _a = LinkAddress.Parse("10.0.0.1:54325");
    private static readonly LinkAddress _b = LinkAddress.Parse("10.0.0.2:54325");
    private static readonly LinkAddress _c = LinkAddress.Parse("10.0.0.3:54325");

    [Fact]
    public void Add_creates_an_entry_that_exact_get_returns()
    {
        var table = new ServiceTable();
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Forward(_a, 1), priority: 7, weight: 3, flags: ServiceFlags.Anycast));

        Assert.True(table.TryGetExact(_echo, out var entry));
        Assert.Equal(_echo, entry.Prefix);
        var rule = Assert.Single(entry.Rules);
        Assert.Equal(ServiceTarget.Forward(_a, 1), rule.Target);
        Assert.Equal(7u, rule.Priority);
        Assert.Equal(3u, rule.Weight);
        Assert.Equal(ServiceFlags.Anycast, rule.Flags);
        Assert.Equal(1, table.Count);
        Assert.False(table.TryGetExact(ServicePrefix.Parse("0x0e0c/15"), out _));
        Assert.False(table.TryGetExact(ServicePrefix.Parse("0x0e0c/17"), out _));
    }

    [Fact]
    public void Weight_zero_is_stored_as_one_and_defaults_are_priority_1_weight_1()
    {
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 1), weight: 0);
        table.Add(_echo, ServiceTarget.Forward(_b, 1));
        table.TryGetExact(_echo, out var entry);
        Assert.All(entry!.Rules, r => Assert.Equal(1u, r.Weight));
        Assert.All(entry.Rules, r => Assert.Equal(ServiceTable.DefaultPriority, r.Priority));
        Assert.Equal(2UL, entry.TopSet.TotalWeight);
    }

    [Fact]
    public void Rules_are_grouped_in_priority_sets_highest_first()
    {
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 1), priority: 5);
        table.Add(_echo, ServiceTarget.Forward(_b, 1), priority: 9);
        table.Add(_echo, ServiceTarget.Forward(_c, 1), priority: 5);
        table.Add(_echo, ServiceTarget.Drop(), priority: 0);

        table.TryGetExact(_echo, out var entry);
        Assert.Equal([9u, 5u, 0u], entry!.Sets.Select(s => s.Priority));
        Assert.Equal([_b], entry.TopSet.Rules.Select(r => r.Target.Address));
        Assert.Equal([_a, _c], entry.Sets[1].Rules.Select(r => r.Target.Address));
        Assert.Equal(4, entry.RuleCount);
    }

    [Fact]
    public void Duplicate_in_the_same_set_is_refused()
    {
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 1));
        Assert.Equal(ServiceTableResult.AlreadyExists, table.Add(_echo, ServiceTarget.Forward(_a, 1), weight: 5));
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Drop()));
        Assert.Equal(ServiceTableResult.AlreadyExists, table.Add(_echo, ServiceTarget.Drop()));
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Demux(1, 6)));
        Assert.Equal(ServiceTableResult.AlreadyExists, table.Add(_echo, ServiceTarget.Demux(1, 6)));
    }

    [Fact]
    public void Duplicate_in_a_lower_priority_set_is_refused()
    {
        // Reference bug 9: only the top set was checked, so the same target could sit in two sets.
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 1), priority: 1);
        table.Add(_echo, ServiceTarget.Forward(_b, 1), priority: 10);
        Assert.Equal(ServiceTableResult.AlreadyExists, table.Add(_echo, ServiceTarget.Forward(_a, 1), priority: 10));
        Assert.Equal(ServiceTableResult.AlreadyExists, table.Add(_echo, ServiceTarget.Forward(_a, 1), priority: 20));
        table.TryGetExact(_echo, out var entry);
        Assert.Equal(2, entry!.RuleCount);
    }

    [Fact]
    public void Same_address_on_another_interface_or_port_is_another_target()
    {
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 1));
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Forward(_a, 2)));
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Forward(_a.WithPort(1), 1)));
    }

    [Fact]
    public void Adding_next_to_a_drop_or_delay_rule_succeeds()
    {
        // Reference bug 9: any DROP or DELAY in the top set made every later add fail with EEXIST.
        var table = new ServiceTable();
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Drop(), priority: 5));
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Delay(), priority: 5));
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Forward(_a, 1), priority: 5));
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Demux(42, ServiceTarget.TcpProtocol), priority: 5));
        Assert.Equal(ServiceTableResult.AlreadyExists, table.Add(_echo, ServiceTarget.Drop(), priority: 1));
        table.TryGetExact(_echo, out var entry);
        Assert.Equal(4, entry!.TopSet.Rules.Length);
    }

    [Fact]
    public void Stream_and_datagram_sockets_share_a_service_id()
    {
        // Reference bug 9: the second DEMUX was refused, so bind of a UDP socket failed next to a TCP one.
        var table = new ServiceTable();
        var id = ServicePrefix.Exact(ServiceId.FromName("echo"));
        Assert.Equal(ServiceTableResult.Ok, table.Add(id, ServiceTarget.Demux(1, 6), ServiceTable.SocketPriority, ServiceTable.SocketWeight));
        Assert.Equal(ServiceTableResult.Ok, table.Add(id, ServiceTarget.Demux(2, 17), ServiceTable.SocketPriority, ServiceTable.SocketWeight));

        Assert.True(table.TryLookupDemux(id.Id, 6, out _, out var tcp));
        Assert.True(table.TryLookupDemux(id.Id, 17, out _, out var udp));
        Assert.Equal(1, tcp.Target.Socket);
        Assert.Equal(2, udp.Target.Socket);
    }

    [Fact]
    public void The_same_socket_cannot_be_added_twice_whatever_the_protocol()
    {
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Demux(1, 6));
        Assert.Equal(ServiceTableResult.AlreadyExists, table.Add(_echo, ServiceTarget.Demux(1, 17)));
    }

    [Fact]
    public void Removing_a_demux_removes_only_that_socket()
    {
        // Reference bug 9: DEMUX deletion removed the first DEMUX target whoever owned it.
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Demux(1, 6));
        table.Add(_echo, ServiceTarget.Demux(2, 17));
        table.Add(_echo, ServiceTarget.Demux(3, 6));

        Assert.Equal(ServiceTableResult.Ok, table.Remove(_echo, ServiceTarget.Demux(2, 17)));
        table.TryGetExact(_echo, out var entry);
        Assert.Equal([1L, 3L], entry!.Rules.Select(r => r.Target.Socket));
        Assert.Equal(ServiceTableResult.NotFound, table.Remove(_echo, ServiceTarget.Demux(2, 17)));
        Assert.False(table.TryLookupDemux(_echo.Id, 17, out _, out _));
    }

    [Fact]
    public void Delay_and_drop_rules_can_be_removed()
    {
        // Reference bug 15: DELAY and DROP rules could never be deleted.
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Delay());
        table.Add(_echo, ServiceTarget.Drop());
        Assert.Equal(ServiceTableResult.Ok, table.Remove(_echo, ServiceTarget.Delay()));
        Assert.Equal(ServiceTableResult.NotFound, table.Remove(_echo, ServiceTarget.Delay()));
        Assert.Equal(ServiceTableResult.Ok, table.Remove(_echo, ServiceTarget.Drop()));
        Assert.Equal(0, table.Count);
        Assert.Null(table.Lookup(_echo.Id));
    }

    [Fact]
    public void Removing_the_last_target_removes_the_entry_and_frees_its_nodes()
    {
        // Reference bug 9: bst_remove_prefix never freed trie nodes.
        var table = new ServiceTable();
        var gen = new ServiceIdGenerator(3);
        var background = Enumerable.Range(0, 200).Select(_ => gen.Prefix()).Distinct().ToList();
        foreach (var p in background)
        {
            table.Add(p, ServiceTarget.Drop());
        }

        var before = TrieInvariants.Dump(table.CurrentVersion.Root);
        var nodesBefore = PrefixTrie.CountNodes(table.CurrentVersion.Root);
        Assert.Equal(nodesBefore, table.CountTrieNodes()); // the public diagnostic counts the same trie
        var extra = Enumerable.Range(0, 100).Select(_ => gen.Prefix()).Distinct().Except(background).ToList();
        foreach (var p in extra)
        {
            table.Add(p, ServiceTarget.Forward(_a, 1));
            table.Add(p, ServiceTarget.Forward(_b, 1));
        }

        Assert.True(PrefixTrie.CountNodes(table.CurrentVersion.Root) > nodesBefore);
        foreach (var p in extra)
        {
            Assert.Equal(ServiceTableResult.Ok, table.Remove(p, ServiceTarget.Forward(_a, 1)));
            Assert.True(table.TryGetExact(p, out _));
            Assert.Equal(ServiceTableResult.Ok, table.Remove(p, ServiceTarget.Forward(_b, 1)));
            Assert.False(table.TryGetExact(p, out _));
        }

        Assert.Equal(background.Count, table.Count);
        Assert.Equal(nodesBefore, PrefixTrie.CountNodes(table.CurrentVersion.Root));
        Assert.Equal(before, TrieInvariants.Dump(table.CurrentVersion.Root));
        TrieInvariants.Check(table);
    }

    [Fact]
    public void Modify_weight_keeps_priority_and_modify_priority_keeps_weight()
    {
        // Reference bug 12: every modify set priority 0 and weight 1.
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 1), priority: 7, weight: 3, flags: ServiceFlags.ScopeLocal);

        Assert.Equal(ServiceTableResult.Ok, table.Modify(_echo, ServiceTarget.Forward(_a, 1), weight: 9));
        table.TryGetExact(_echo, out var entry);
        var rule = Assert.Single(entry!.Rules);
        Assert.Equal((7u, 9u, ServiceFlags.ScopeLocal), (rule.Priority, rule.Weight, rule.Flags));

        Assert.Equal(ServiceTableResult.Ok, table.Modify(_echo, ServiceTarget.Forward(_a, 1), priority: 2));
        table.TryGetExact(_echo, out entry);
        rule = Assert.Single(entry!.Rules);
        Assert.Equal((2u, 9u, ServiceFlags.ScopeLocal), (rule.Priority, rule.Weight, rule.Flags));

        Assert.Equal(ServiceTableResult.Ok, table.Modify(_echo, ServiceTarget.Forward(_a, 1)));
        table.TryGetExact(_echo, out var unchanged);
        Assert.Equal((2u, 9u), (unchanged!.TopSet.Rules[0].Priority, unchanged.TopSet.Rules[0].Weight));
    }

    [Fact]
    public void Modify_address_keeps_everything_else_including_counters_and_timeouts()
    {
        var table = new ServiceTable();
        var now = TimeSpan.FromSeconds(10);
        table.Add(_echo, ServiceTarget.Forward(_a, 4), priority: 7, weight: 3, hardTimeout: TimeSpan.FromMinutes(1), now: now);
        table.TryGetExact(_echo, out var before);
        table.RecordResolved(before!.TopSet.Rules[0], 100, now);

        Assert.Equal(ServiceTableResult.Ok, table.Modify(_echo, ServiceTarget.Forward(_a, 4), newAddress: _b, weight: 0));
        table.TryGetExact(_echo, out var after);
        var rule = Assert.Single(after!.Rules);
        Assert.Equal(ServiceTarget.Forward(_b, 4), rule.Target);
        Assert.Equal((7u, 1u), (rule.Priority, rule.Weight));
        Assert.Equal(TimeSpan.FromMinutes(1), rule.HardTimeout);
        Assert.Equal(now, rule.AddedAt);
        Assert.Same(before.TopSet.Rules[0].Counters, rule.Counters);
        Assert.Equal(1, rule.Counters.PacketsResolved);
        Assert.Same(before.Counters, after.Counters);
        Assert.Equal(ServiceTableResult.NotFound, table.Modify(_echo, ServiceTarget.Forward(_a, 4), weight: 2));
    }

    [Fact]
    public void Modify_priority_moves_the_rule_to_the_end_of_its_new_set()
    {
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 1), priority: 5);
        table.Add(_echo, ServiceTarget.Forward(_b, 1), priority: 5);
        table.Add(_echo, ServiceTarget.Forward(_c, 1), priority: 1);

        table.Modify(_echo, ServiceTarget.Forward(_c, 1), priority: 5);
        table.TryGetExact(_echo, out var entry);
        Assert.Equal([_a, _b, _c], entry!.TopSet.Rules.Select(r => r.Target.Address));

        table.Modify(_echo, ServiceTarget.Forward(_a, 1), priority: 9);
        table.TryGetExact(_echo, out entry);
        Assert.Equal([9u, 5u], entry!.Sets.Select(s => s.Priority));
        Assert.Equal([_a], entry.TopSet.Rules.Select(r => r.Target.Address));

        table.Modify(_echo, ServiceTarget.Forward(_a, 1), priority: 1);
        table.TryGetExact(_echo, out entry);
        Assert.Equal([5u, 1u], entry!.Sets.Select(s => s.Priority));
    }

    [Fact]
    public void Modify_errors()
    {
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 1));
        table.Add(_echo, ServiceTarget.Forward(_b, 1));
        table.Add(_echo, ServiceTarget.Demux(5, 6));

        Assert.Equal(ServiceTableResult.AlreadyExists, table.Modify(_echo, ServiceTarget.Forward(_a, 1), newAddress: _b));
        Assert.Equal(ServiceTableResult.NotFound, table.Modify(_echo, ServiceTarget.Forward(_c, 1), weight: 2));
        Assert.Equal(ServiceTableResult.NotFound, table.Modify(ServicePrefix.Parse("0x0e0c/17"), ServiceTarget.Forward(_a, 1), weight: 2));
        Assert.Equal(ServiceTableResult.InvalidTarget, table.Modify(_echo, ServiceTarget.Demux(5, 6), newAddress: _c));
        Assert.Equal(ServiceTableResult.InvalidTarget, table.Modify(_echo, ServiceTarget.Forward(_a, 1), newAddress: LinkAddress.None));
        Assert.Equal(ServiceTableResult.InvalidTarget, table.Modify(_echo, ServiceTarget.Forward(LinkAddress.None, 1), weight: 2));
        Assert.Equal(ServiceTableResult.InvalidPriority, table.Modify(_echo, ServiceTarget.Forward(_a, 1), priority: ServiceTable.MaxPriority + 1));
        Assert.Equal(ServiceTableResult.InvalidWeight, table.Modify(_echo, ServiceTarget.Forward(_a, 1), weight: ServiceTable.MaxWeight + 1));
        Assert.Equal(ServiceTableResult.Ok, table.Modify(_echo, ServiceTarget.Demux(5, 17), priority: 3)); // identity is the socket
    }

    [Theory]
    [MemberData(nameof(InvalidTargets))]
    public void Malformed_targets_are_refused(ServiceTarget target)
    {
        var table = new ServiceTable();
        Assert.Equal(ServiceTableResult.InvalidTarget, table.Add(_echo, target));
        Assert.Equal(0, table.Count);
        Assert.Equal(0, table.Version);
    }

    public static TheoryData<ServiceTarget> InvalidTargets() =>
    [
        ServiceTarget.Forward(LinkAddress.None, 1),
        ServiceTarget.Forward(_a, -1),
        ServiceTarget.Forward(_a, 1) with { Socket = 3 },
        ServiceTarget.Demux(0, 6),
        ServiceTarget.Demux(7, 0),
        ServiceTarget.Demux(7, 99),
        ServiceTarget.Demux(7, 6) with { Address = _a },
        ServiceTarget.Delay() with { Address = _a },
        ServiceTarget.Drop() with { Interface = 1 },
        default(ServiceTarget),
        new ServiceTarget((ServiceTargetType)9, LinkAddress.None, 0, 0, 0),
    ];

    [Fact]
    public void Priority_weight_and_timeouts_are_validated()
    {
        var table = new ServiceTable();
        var t = ServiceTarget.Forward(_a, 1);
        Assert.Equal(ServiceTableResult.InvalidPriority, table.Add(_echo, t, priority: ServiceTable.MaxPriority + 1));
        Assert.Equal(ServiceTableResult.InvalidWeight, table.Add(_echo, t, weight: ServiceTable.MaxWeight + 1));
        Assert.Equal(ServiceTableResult.InvalidTimeout, table.Add(_echo, t, idleTimeout: TimeSpan.Zero));
        Assert.Equal(ServiceTableResult.InvalidTimeout, table.Add(_echo, t, hardTimeout: TimeSpan.FromSeconds(-1)));
        Assert.Equal(0, table.Count);
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, t, priority: ServiceTable.MaxPriority, weight: ServiceTable.MaxWeight));
        Assert.Equal(ServiceTableResult.Ok, table.Add(_echo, ServiceTarget.Drop(), priority: 0));
    }

    [Fact]
    public void Remove_errors()
    {
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 1));
        Assert.Equal(ServiceTableResult.NotFound, table.Remove(_echo, ServiceTarget.Forward(_a, 2)));
        Assert.Equal(ServiceTableResult.NotFound, table.Remove(_echo, ServiceTarget.Drop()));
        Assert.Equal(ServiceTableResult.NotFound, table.Remove(ServicePrefix.Parse("0x0e0c/17"), ServiceTarget.Forward(_a, 1)));
        Assert.Equal(ServiceTableResult.InvalidTarget, table.Remove(_echo, ServiceTarget.Forward(LinkAddress.None, 1)));
        Assert.Equal(ServiceTableResult.InvalidTarget, table.Remove(_echo, ServiceTarget.Demux(0, 6)));
        Assert.Equal(ServiceTableResult.InvalidTarget, table.Remove(_echo, default));
        Assert.Equal(1, table.Count);
    }

    [Fact]
    public void Version_changes_only_when_the_table_changes()
    {
        var table = new ServiceTable();
        Assert.Equal(0, table.Version);
        table.Add(_echo, ServiceTarget.Forward(_a, 1));
        Assert.Equal(1, table.Version);
        table.Add(_echo, ServiceTarget.Forward(_a, 1));
        table.Remove(_echo, ServiceTarget.Drop());
        table.Modify(_echo, ServiceTarget.Forward(_b, 1), weight: 3);
        Assert.Equal(0, table.RemoveInterface(9));
        Assert.Equal(1, table.Version);
        table.Modify(_echo, ServiceTarget.Forward(_a, 1), weight: 3);
        Assert.Equal(2, table.Version);
    }

    [Fact]
    public void RemoveInterface_removes_only_forward_rules_on_that_interface()
    {
        var table = new ServiceTable();
        var broadcast = LinkAddress.Parse("10.0.0.255:54325");
        var other = ServicePrefix.Parse("0xabcd/16");
        table.Add(ServicePrefix.Default, ServiceTarget.Forward(broadcast, 1), ServiceTable.BroadcastPriority, ServiceTable.BroadcastWeight);
        table.Add(ServicePrefix.Default, ServiceTarget.Forward(LinkAddress.Parse("192.168.1.255"), 2), ServiceTable.BroadcastPriority, ServiceTable.BroadcastWeight);
        table.Add(_echo, ServiceTarget.Forward(_a, 1));
        table.Add(_echo, ServiceTarget.Forward(_b, 1), priority: 3);
        table.Add(_echo, ServiceTarget.Forward(_c, 2));
        table.Add(_echo, ServiceTarget.Demux(1, 6));
        table.Add(other, ServiceTarget.Forward(_a, 1));

        Assert.Equal(4, table.RemoveInterface(1));
        Assert.False(table.TryGetExact(other, out _));
        Assert.True(table.TryGetExact(_echo, out var echo));
        Assert.Equal([ServiceTarget.Forward(_c, 2), ServiceTarget.Demux(1, 6)], echo.Rules.Select(r => r.Target));
        Assert.True(table.TryGetExact(ServicePrefix.Default, out var fallback));
        Assert.Equal(2, Assert.Single(fallback.Rules).Target.Interface);
        Assert.Equal(0, table.RemoveInterface(1));
        Assert.Equal(2, table.RemoveInterface(2));
        Assert.Equal(1, table.Count);
        TrieInvariants.Check(table);
    }

    [Fact]
    public void RemoveInterface_still_finds_rules_after_modify_and_readd()
    {
        var table = new ServiceTable();
        table.Add(_echo, ServiceTarget.Forward(_a, 3));
        table.Modify(_echo, ServiceTarget.Forward(_a, 3), newAddress: _b);
        table.Remove(_echo, ServiceTarget.Forward(_b, 3));
        table.Add(_echo, ServiceTarget.Forward(_c, 3));
        Assert.Equal(1, table.RemoveInterface(3));
        Assert.Equal(0, table.Count);
    }
}
