using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>The fleet registry's key layout and value encoding, and the snapshot+watch merge (docs/router-fleet.md).</summary>
public sealed class RegistryCodecTests
{
    private static readonly ServicePrefix Web = new(ServiceId.FromName("web"), 64);

    private static RegistryRecord Record(LinkAddress host, uint weight = 3) => new()
    {
        Prefix = Web,
        Host = host,
        Weight = weight,
        Draining = true,
        Transports = (ServiceTransports)3,
        Sender = 0xfeedface01234567,
        Router = "r2",
        RouterEpoch = 0x0123456789abcdef,
        LeaseMilliseconds = 3000,
        WrittenAtUnixMilliseconds = 1_700_000_000_123,
    };

    [Theory]
    [InlineData("10.0.0.5:54325")]
    [InlineData("[fd00::5]:54325")]
    public void A_record_round_trips_through_its_key_and_value(string address)
    {
        var record = Record(LinkAddress.Parse(address));
        var key = RegistryCodec.RegistrationKey(record.Prefix, record.Host);
        Assert.StartsWith("reg/", key, StringComparison.Ordinal);
        Assert.EndsWith("/64/" + address, key, StringComparison.Ordinal);
        Assert.True(RegistryCodec.TryDecode(key, RegistryCodec.EncodeValue(record), out var back, out var error), error);
        Assert.Equal(record, back);
    }

    [Fact]
    public void The_value_is_versioned_json()
    {
        var value = RegistryCodec.EncodeValue(Record(LinkAddress.Parse("10.0.0.5:54325")));
        Assert.Equal(
            """{"v":1,"weight":3,"draining":true,"transports":3,"sender":"feedface01234567","router":"r2","epoch":"0123456789abcdef","lease_ms":3000,"at":1700000000123}""",
            value);
    }

    [Theory]
    [InlineData("reg/x", "{}")]
    [InlineData("drain/10.0.0.1:1/*", "{}")]
    [InlineData("reg/0000/64/10.0.0.5:54325", """{"v":1}""")]
    [InlineData("reg/0000/64/10.0.0.5:54325", """{"v":2,"weight":1}""")]
    [InlineData("reg/0000/64/10.0.0.5:54325", "not json")]
    [InlineData("reg/0000/64/not-an-address", """{"v":1,"weight":1,"draining":false,"transports":0,"sender":"1","router":"a","epoch":"1","lease_ms":1,"at":1}""")]
    [InlineData("reg/0000/64/10.0.0.5:54325", """{"v":1,"weight":0,"draining":false,"transports":0,"sender":"1","router":"a","epoch":"1","lease_ms":1,"at":1}""")]
    public void Malformed_entries_are_refused_with_a_reason(string key, string value)
    {
        Assert.False(RegistryCodec.TryDecode(key, value, out var record, out var error));
        Assert.Null(record);
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Fact]
    public void Drain_keys_round_trip()
    {
        var host = LinkAddress.Parse("10.0.0.7:0");
        Assert.True(RegistryCodec.TryParseDrainKey(RegistryCodec.DrainKey(host, null), out var h, out var p, out _));
        Assert.Equal(host, h);
        Assert.Null(p);
        Assert.True(RegistryCodec.TryParseDrainKey(RegistryCodec.DrainKey(host, Web), out h, out p, out _));
        Assert.Equal(Web, p);
        Assert.False(RegistryCodec.TryParseDrainKey("drain/nothing", out _, out _, out _));
    }

    [Fact]
    public void A_watch_from_the_snapshot_revision_loses_nothing_and_repeats_nothing()
    {
        var mirror = new RegistryMirror();
        var changes = new List<RegistryChange>();
        mirror.ApplySnapshot(10, [new("a", "1", 5), new("b", "1", 10)], changes);
        Assert.Equal(2, changes.Count);
        Assert.Equal(10, mirror.Revision);

        // The watch starts at the snapshot's revision: an event the snapshot already holds is not applied twice.
        changes.Clear();
        Assert.Equal(0, mirror.ApplyEvents([new("b", "1", 10)], changes));
        Assert.Empty(changes);

        // One transaction's events share a revision: all are applied.
        Assert.Equal(3, mirror.ApplyEvents([new("c", "1", 11), new("d", "1", 11), new("a", "2", 11)], changes));
        Assert.Equal([new("c", null, "1"), new("d", null, "1"), new("a", "1", "2")], changes);

        // A resumed watch that replays the last response changes nothing; the next one goes through.
        changes.Clear();
        Assert.Equal(0, mirror.ApplyEvents([new("c", "1", 11), new("d", "1", 11), new("a", "2", 11)], changes));
        Assert.Equal(1, mirror.ApplyEvents([new("c", null, 12)], changes));
        Assert.Equal([new("c", "1", null)], changes);

        // A delete replayed after the key came back does not remove it again.
        changes.Clear();
        mirror.ApplyEvents([new("c", "3", 13)], changes);
        Assert.Equal(0, mirror.ApplyEvents([new("c", null, 12)], changes));
        Assert.Equal("3", mirror.Get("c"));
        Assert.Equal(13, mirror.Revision);
    }

    [Fact]
    public void Deleting_an_absent_key_and_putting_an_equal_value_report_no_change()
    {
        var mirror = new RegistryMirror();
        var changes = new List<RegistryChange>();
        mirror.ApplySnapshot(1, [new("a", "1", 1)], changes);
        changes.Clear();
        Assert.Equal(2, mirror.ApplyEvents([new("zz", null, 2), new("a", "1", 2)], changes));
        Assert.Empty(changes);
        Assert.Equal(2, mirror.Revision);
    }

    [Fact]
    public void A_resnapshot_after_compaction_reports_only_the_difference()
    {
        var mirror = new RegistryMirror();
        var changes = new List<RegistryChange>();
        mirror.ApplySnapshot(10, [new("keep", "1", 3), new("gone", "1", 4), new("changed", "1", 5)], changes);

        // The watch fell behind a compaction (revision too old): a new snapshot at 50 replaces the state.
        changes.Clear();
        mirror.ApplySnapshot(50, [new("keep", "1", 3), new("changed", "2", 40), new("new", "1", 45)], changes);
        Assert.Equal(3, changes.Count);
        Assert.Contains(new RegistryChange("gone", "1", null), changes);
        Assert.Contains(new RegistryChange("changed", "1", "2"), changes);
        Assert.Contains(new RegistryChange("new", null, "1"), changes);
        Assert.Equal(50, mirror.Revision);

        // Events of the old watch that straggle in are ignored; progress notifications advance the revision.
        changes.Clear();
        Assert.Equal(0, mirror.ApplyEvents([new("gone", "1", 30)], changes));
        mirror.Advance(60);
        Assert.Equal(60, mirror.Revision);
        Assert.Equal(0, mirror.ApplyEvents([new("x", "1", 55)], changes));
        Assert.Empty(changes);
    }
}
