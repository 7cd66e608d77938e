using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

/// <summary>Longest-prefix match, exact get, end-host DEMUX lookup, enumeration and selection.</summary>
public sealed class ServiceTableLookupTests
{
    private static readonly LinkAddress _a = LinkAddress.Parse("10.0.0.1:54325");
    private static readonly LinkAddress _b = LinkAddress.Parse("10.0.0.2:54325");

    private static ServiceId Id(string hex) => ServiceId.Parse(hex);

    [Fact]
    public void Lookup_returns_the_longest_matching_prefix()
    {
        var table = new ServiceTable();
        var id = Id("0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        var lengths = new[] { 0, 3, 8, 13, 16, 64, 65, 128, 200, 255, 256 };
        foreach (var length in lengths)
        {
            Assert.Equal(ServiceTableResult.Ok, table.Add(new ServicePrefix(id, length), ServiceTarget.Forward(_a, length)));
        }

        Assert.Equal(256, table.Lookup(id)!.Prefix.Length);
        foreach (var length in lengths.Where(l => l < 256))
        {
            // Flip the bit right after the prefix: that prefix is now the longest that matches.
            var key = id.WithBit(length, !id.GetBit(length));
            var expected = lengths.Where(l => l <= length).Max();
            Assert.Equal(expected, table.Lookup(key)!.Prefix.Length);
        }

        TrieInvariants.Check(table);
    }

    [Fact]
    public void Lookup_without_a_match_is_null_and_the_default_rule_matches_everything()
    {
        var table = new ServiceTable();
        var p = ServicePrefix.Parse("0xab/8");
        table.Add(p, ServiceTarget.Drop());
        Assert.Null(table.Lookup(Id("0xac")));
        Assert.Equal(p, table.Lookup(Id("0xab77"))!.Prefix);

        table.Add(ServicePrefix.Default, ServiceTarget.Forward(LinkAddress.Parse("10.0.0.255"), 1));
        Assert.Equal(ServicePrefix.Default, table.Lookup(Id("0xac"))!.Prefix);
        Assert.Equal(ServicePrefix.Default, table.Lookup(ServiceId.Zero)!.Prefix);
    }

    [Fact]
    public void Lookup_checks_every_bit_of_a_long_tail()
    {
        var table = new ServiceTable();
        var id = ServiceId.FromName("tail");
        table.Add(ServicePrefix.Exact(id), ServiceTarget.Drop());
        Assert.NotNull(table.Lookup(id));
        for (var bit = 0; bit < 256; bit++)
        {
            Assert.Null(table.Lookup(id.WithBit(bit, !id.GetBit(bit))));
        }
    }

    [Fact]
    public void Lookup_sees_prefixes_inside_a_byte()
    {
        var table = new ServiceTable();
        table.Add(ServicePrefix.Parse("0x80/1"), ServiceTarget.Forward(_a, 1));
        table.Add(ServicePrefix.Parse("0xc0/2"), ServiceTarget.Forward(_a, 2));
        table.Add(ServicePrefix.Parse("0xf0/4"), ServiceTarget.Forward(_a, 3));
        table.Add(ServicePrefix.Parse("0xf8/7"), ServiceTarget.Forward(_a, 4));
        table.Add(ServicePrefix.Parse("0xf801/16"), ServiceTarget.Forward(_a, 5));

        Assert.Null(table.Lookup(Id("0x7f")));
        Assert.Equal(1, table.Lookup(Id("0xbf"))!.Prefix.Length);
        Assert.Equal(2, table.Lookup(Id("0xef"))!.Prefix.Length);
        Assert.Equal(4, table.Lookup(Id("0xf7"))!.Prefix.Length);
        Assert.Equal(7, table.Lookup(Id("0xf9"))!.Prefix.Length);
        Assert.Equal(16, table.Lookup(Id("0xf801"))!.Prefix.Length);
        Assert.Equal(7, table.Lookup(Id("0xf802"))!.Prefix.Length);
        Assert.Equal(4, table.Lookup(Id("0xfe01"))!.Prefix.Length);
        TrieInvariants.Check(table);
    }

    [Fact]
    public void Batch_lookup_matches_single_lookups()
    {
        var table = new ServiceTable();
        var gen = new ServiceIdGenerator(21);
        foreach (var p in Enumerable.Range(0, 3000).Select(_ => gen.Prefix()).Distinct())
        {
            table.Add(p, ServiceTarget.Drop());
        }

        foreach (var n in new[] { 0, 1, 15, 16, 17, 100 })
        {
            var keys = Enumerable.Range(0, n).Select(i => i % 2 == 0 ? gen.Id() : gen.RandomId()).ToArray();
            var results = new ServiceEntry?[n + 2];
            table.LookupBatch(keys, results);
            for (var i = 0; i < n; i++)
            {
                Assert.Same(table.Lookup(keys[i]), results[i]);
            }
        }

        Assert.Throws<ArgumentException>(() => table.LookupBatch(new ServiceId[3], new ServiceEntry?[2]));
    }

    [Fact]
    public void Demux_lookup_only_sees_entries_with_a_socket_of_that_protocol()
    {
        var table = new ServiceTable();
        var service = ServicePrefix.Exact(ServiceId.FromName("kv"));
        var group = new ServicePrefix(service.Id, 64);
        table.Add(ServicePrefix.Default, ServiceTarget.Forward(_a, 1));
        table.Add(group, ServiceTarget.Demux(10, 17), ServiceTable.SocketPriority, ServiceTable.SocketWeight);
        table.Add(service, ServiceTarget.Forward(_b, 1), priority: 40000);
        table.Add(service, ServiceTarget.Demux(11, 6), ServiceTable.SocketPriority, ServiceTable.SocketWeight);

        // Stream: the exact entry, through its DEMUX rule even though a FORWARD rule has a higher priority.
        Assert.True(table.TryLookupDemux(service.Id, 6, out var entry, out var rule));
        Assert.Equal(service, entry.Prefix);
        Assert.Equal(11, rule.Target.Socket);

        // Datagram: the exact entry has no UDP socket, so the /64 one answers.
        Assert.True(table.TryLookupDemux(service.Id, 17, out entry, out rule));
        Assert.Equal(group, entry.Prefix);
        Assert.Equal(10, rule.Target.Socket);

        // Protocol 0 accepts any socket; unknown protocols find nothing; FORWARD-only entries are never DEMUX answers.
        Assert.True(table.TryLookupDemux(service.Id, 0, out entry, out rule));
        Assert.Equal((service, 11L), (entry.Prefix, rule.Target.Socket));
        Assert.False(table.TryLookupDemux(service.Id, 99, out _, out _));
        Assert.False(table.TryLookupDemux(ServiceId.FromName("other"), 6, out _, out _));

        // Closing the TCP socket makes the datagram /64 the answer for protocol 0 as well.
        table.Remove(service, ServiceTarget.Demux(11, 6));
        Assert.False(table.TryLookupDemux(service.Id, 6, out _, out _));
        Assert.True(table.TryLookupDemux(service.Id, 0, out entry, out _));
        Assert.Equal(group, entry.Prefix);
        TrieInvariants.Check(table);
    }

    [Fact]
    public void Demux_lookup_prefers_the_highest_priority_socket()
    {
        var table = new ServiceTable();
        var p = ServicePrefix.Parse("0x77/8");
        table.Add(p, ServiceTarget.Demux(1, 6), priority: 5);
        table.Add(p, ServiceTarget.Demux(2, 6), priority: 9);
        Assert.True(table.TryLookupDemux(Id("0x7701"), 6, out _, out var rule));
        Assert.Equal(2, rule.Target.Socket);
    }

    [Fact]
    public void Entries_is_a_snapshot_of_every_entry()
    {
        var table = new ServiceTable();
        var prefixes = new[] { ServicePrefix.Default, ServicePrefix.Parse("0x80/1"), ServicePrefix.Parse("0x8000/9"), ServicePrefix.Exact(ServiceId.FromName("x")) };
        foreach (var p in prefixes)
        {
            table.Add(p, ServiceTarget.Drop());
        }

        var enumerator = table.Entries.GetEnumerator();
        table.Add(ServicePrefix.Parse("0x01/8"), ServiceTarget.Drop());
        var seen = new List<ServicePrefix>();
        while (enumerator.MoveNext())
        {
            seen.Add(enumerator.Current.Prefix);
        }

        enumerator.Dispose();
        Assert.Equal(prefixes.Order(), seen.Order());
        Assert.Equal(5, table.Entries.Count());
    }

    [Fact]
    public void Select_uses_only_the_top_priority_set()
    {
        var table = new ServiceTable();
        var p = ServicePrefix.Parse("0x42/8");
        table.Add(p, ServiceTarget.Forward(_a, 1), priority: 2, weight: 1000);
        table.Add(p, ServiceTarget.Forward(_b, 1), priority: 3, weight: 1);
        var random = new SeededRandomSource(1);
        for (var i = 0; i < 1000; i++)
        {
            Assert.True(table.TrySelect(table.Lookup(Id("0x42")), random, out var rule));
            Assert.Equal(_b, rule.Target.Address);
        }

        Assert.False(table.TrySelect(null, random, out _));
    }

    [Fact]
    public void All_mode_is_the_top_set()
    {
        var table = new ServiceTable();
        var p = ServicePrefix.Parse("0x42/8");
        table.Add(p, ServiceTarget.Forward(_a, 1), flags: ServiceFlags.Multicast);
        table.Add(p, ServiceTarget.Forward(_b, 1));
        table.Add(p, ServiceTarget.Drop(), priority: 0);
        var entry = table.Lookup(Id("0x42"))!;
        Assert.Equal(ServiceFlags.Multicast, entry.TopSet.Flags);
        Assert.Equal([_a, _b], entry.TopSet.Rules.Select(r => r.Target.Address));
    }

    [Fact]
    public void An_old_entry_stays_unchanged_after_updates()
    {
        var table = new ServiceTable();
        var p = ServicePrefix.Parse("0x42/8");
        table.Add(p, ServiceTarget.Forward(_a, 1));
        var old = table.Lookup(Id("0x42"))!;
        table.Add(p, ServiceTarget.Forward(_b, 1));
        table.Remove(p, ServiceTarget.Forward(_a, 1));
        Assert.Equal(_a, Assert.Single(old.Rules).Target.Address);
        Assert.Equal(_b, Assert.Single(table.Lookup(Id("0x42"))!.Rules).Target.Address);
    }
}
