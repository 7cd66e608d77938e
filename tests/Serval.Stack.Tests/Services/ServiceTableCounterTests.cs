using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

/// <summary>Per-rule, per-entry and table-wide packet and byte counters.</summary>
public sealed class ServiceTableCounterTests
{
    private static readonly ServicePrefix _svc = ServicePrefix.Parse("0x5e/8");
    private static readonly LinkAddress _a = LinkAddress.Parse("10.0.0.1");
    private static readonly LinkAddress _b = LinkAddress.Parse("10.0.0.2");

    [Fact]
    public void Resolutions_and_drops_count_at_every_level()
    {
        var table = new ServiceTable();
        table.Add(_svc, ServiceTarget.Forward(_a, 1));
        table.Add(_svc, ServiceTarget.Forward(_b, 1));
        var entry = table.Lookup(_svc.Id)!;
        var a = entry.TopSet.Rules[0];
        var b = entry.TopSet.Rules[1];

        table.RecordResolved(a, 100, TimeSpan.FromSeconds(1));
        table.RecordResolved(a, 50, TimeSpan.FromSeconds(2));
        table.RecordResolved(b, 10, TimeSpan.FromSeconds(3));
        table.RecordDropped(entry, 7);
        table.RecordDropped(b, 3);
        table.RecordDropped((ServiceEntry?)null, 1000);

        Assert.Equal((2L, 150L, 0L, 0L), Snapshot(a.Counters));
        Assert.Equal((1L, 10L, 1L, 3L), Snapshot(b.Counters));
        Assert.Equal((3L, 160L, 2L, 10L), Snapshot(entry.Counters));
        Assert.Equal((3L, 160L, 3L, 1010L), Snapshot(table.Counters));
        Assert.Equal(TimeSpan.FromSeconds(2), a.Counters.LastResolved);
        Assert.Equal(TimeSpan.FromSeconds(3), entry.Counters.LastResolved);
        Assert.Null(new ServiceTable().Counters.LastResolved);
    }

    [Fact]
    public void Counters_survive_updates_of_the_entry_but_not_its_removal()
    {
        var table = new ServiceTable();
        table.Add(_svc, ServiceTarget.Forward(_a, 1));
        var first = table.Lookup(_svc.Id)!;
        table.RecordResolved(first.TopSet.Rules[0], 100, TimeSpan.Zero);

        table.Add(_svc, ServiceTarget.Forward(_b, 1));
        table.Modify(_svc, ServiceTarget.Forward(_a, 1), priority: 9, weight: 4);
        var second = table.Lookup(_svc.Id)!;
        Assert.Same(first.Counters, second.Counters);
        Assert.Equal(1, second.TopSet.Rules[0].Counters.PacketsResolved);
        Assert.Equal(0, second.Sets[1].Rules[0].Counters.PacketsResolved);

        // _a rule resolved through a stale entry still counts.
        table.RecordResolved(first.TopSet.Rules[0], 1, TimeSpan.Zero);
        Assert.Equal(2, second.TopSet.Rules[0].Counters.PacketsResolved);
        Assert.Equal(2, second.Counters.PacketsResolved);

        table.Remove(_svc, ServiceTarget.Forward(_a, 1));
        table.Remove(_svc, ServiceTarget.Forward(_b, 1));
        table.Add(_svc, ServiceTarget.Forward(_a, 1));
        Assert.Equal(0, table.Lookup(_svc.Id)!.Counters.PacketsResolved);
        Assert.Equal(0, table.Lookup(_svc.Id)!.TopSet.Rules[0].Counters.PacketsResolved);
    }

    [Fact]
    public void Concurrent_increments_are_not_lost()
    {
        var table = new ServiceTable();
        table.Add(_svc, ServiceTarget.Forward(_a, 1));
        var rule = table.Lookup(_svc.Id)!.TopSet.Rules[0];
        const int PerThread = 100_000;
        var threads = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                table.RecordResolved(rule, 3, TimeSpan.FromTicks(i));
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal((2L * PerThread, 6L * PerThread), (rule.Counters.PacketsResolved, rule.Counters.BytesResolved));
        Assert.Equal(2L * PerThread, table.Counters.PacketsResolved);
        Assert.Equal(TimeSpan.FromTicks(PerThread - 1), rule.Counters.LastResolved);
    }

    private static (long, long, long, long) Snapshot(ServiceCounters c) =>
        (c.PacketsResolved, c.BytesResolved, c.PacketsDropped, c.BytesDropped);
}
