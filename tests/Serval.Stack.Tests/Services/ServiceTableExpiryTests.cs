using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

/// <summary>Idle and hard timeouts (defined but never implemented in the reference).</summary>
public sealed class ServiceTableExpiryTests
{
    private static readonly ServicePrefix _svc = ServicePrefix.Parse("0x5e/8");
    private static readonly LinkAddress _a = LinkAddress.Parse("10.0.0.1");
    private static readonly LinkAddress _b = LinkAddress.Parse("10.0.0.2");

    private static TimeSpan S(double seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void Hard_timeout_counts_from_the_add_whatever_the_use()
    {
        var table = new ServiceTable();
        table.Add(_svc, ServiceTarget.Forward(_a, 1), hardTimeout: S(30), now: S(100));
        table.Add(_svc, ServiceTarget.Forward(_b, 1), now: S(100));
        var rule = table.Lookup(_svc.Id)!.TopSet.Rules[0];
        Assert.Equal(S(130), rule.ExpiresAt);

        table.RecordResolved(rule, 10, S(129));
        Assert.Equal(0, table.Expire(S(129.9)));
        var expired = new List<ServiceExpiration>();
        Assert.Equal(1, table.Expire(S(130), expired));
        var e = Assert.Single(expired);
        Assert.Equal((_svc, ServiceTarget.Forward(_a, 1), ServiceExpiryReason.Hard), (e.Prefix, e.Rule.Target, e.Reason));
        Assert.Equal(1, e.Rule.Counters.PacketsResolved);
        Assert.Equal([ServiceTarget.Forward(_b, 1)], table.Lookup(_svc.Id)!.Rules.Select(r => r.Target));
    }

    [Fact]
    public void Idle_timeout_counts_from_the_last_resolution()
    {
        var table = new ServiceTable();
        table.Add(_svc, ServiceTarget.Forward(_a, 1), idleTimeout: S(10), now: S(0));
        var rule = table.Lookup(_svc.Id)!.TopSet.Rules[0];
        Assert.Equal(S(10), rule.ExpiresAt);

        table.RecordResolved(rule, 10, S(8));
        Assert.Equal(S(8), rule.LastUsed);
        Assert.Equal(S(18), rule.ExpiresAt);
        Assert.Equal(0, table.Expire(S(17)));
        table.RecordResolved(rule, 10, S(5)); // an older time never moves last use back
        Assert.Equal(S(8), rule.LastUsed);

        var expired = new List<ServiceExpiration>();
        Assert.Equal(1, table.Expire(S(18), expired));
        Assert.Equal(ServiceExpiryReason.Idle, Assert.Single(expired).Reason);
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void An_unused_rule_idles_out_from_when_it_was_added()
    {
        var table = new ServiceTable();
        table.Add(_svc, ServiceTarget.Delay(), idleTimeout: S(5), now: S(50));
        Assert.Equal(0, table.Expire(S(54)));
        Assert.Equal(1, table.Expire(S(55)));
        Assert.Null(table.Lookup(_svc.Id));
    }

    [Fact]
    public void Modify_keeps_the_timers()
    {
        var table = new ServiceTable();
        table.Add(_svc, ServiceTarget.Forward(_a, 1), hardTimeout: S(10), now: S(0));
        table.Modify(_svc, ServiceTarget.Forward(_a, 1), newAddress: _b, priority: 4);
        Assert.Equal(0, table.Expire(S(9)));
        Assert.Equal(1, table.Expire(S(10)));
    }

    [Fact]
    public void Rules_without_timeouts_never_expire_and_next_expiry_is_the_earliest_deadline()
    {
        var table = new ServiceTable();
        Assert.Null(table.NextExpiry);
        table.Add(_svc, ServiceTarget.Forward(_a, 1), now: S(0));
        Assert.Null(table.NextExpiry);
        table.Add(_svc, ServiceTarget.Forward(_b, 1), hardTimeout: S(40), now: S(0));
        table.Add(ServicePrefix.Parse("0x6f/8"), ServiceTarget.Drop(), idleTimeout: S(30), hardTimeout: S(100), now: S(0));
        Assert.Equal(S(30), table.NextExpiry);

        table.RecordResolved(table.Lookup(ServiceId.Parse("0x6f"))!.TopSet.Rules[0], 1, S(20));
        Assert.Equal(S(40), table.NextExpiry);
        Assert.Equal(1, table.Expire(S(45)));
        Assert.Equal(S(50), table.NextExpiry);
        Assert.Equal(1, table.Expire(S(1000)));
        Assert.Null(table.NextExpiry);
        Assert.Equal(1, table.Count);
        Assert.Equal(0, table.Expire(S(1_000_000)));
    }

    [Fact]
    public void Expire_removes_demux_rules_from_end_host_lookup()
    {
        var table = new ServiceTable();
        table.Add(_svc, ServiceTarget.Demux(3, 17), idleTimeout: S(1), now: S(0));
        Assert.True(table.TryLookupDemux(_svc.Id, 17, out _, out _));
        Assert.Equal(1, table.Expire(S(2)));
        Assert.False(table.TryLookupDemux(_svc.Id, 17, out _, out _));
        TrieInvariants.Check(table);
    }
}
