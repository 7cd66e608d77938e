namespace Serval.Cli.Tests;

public sealed class ServiceCommandTests(DaemonFixture daemon) : IClassFixture<DaemonFixture>
{
    [Fact]
    public void Add_then_list_shows_the_rule_in_a_table()
    {
        var add = daemon.Run("service", "add", "0x10:8", "127.0.0.200", "priority", "2", "weight", "3");
        Assert.True(add.ExitCode == 0, add.ToString());

        var list = daemon.Run("service", "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains("0x1/8", list.Output, StringComparison.Ordinal);
        Assert.Contains("forward 127.0.0.200:54325 if 1", list.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void List_json_gives_every_rule_with_target_and_counters()
    {
        Assert.Equal(0, daemon.Run("service", "add", "0x20/8", "drop", "--priority", "4").ExitCode);

        var list = daemon.Run("service", "list", "--json");
        Assert.True(list.ExitCode == 0, list.ToString());
        var rule = list.Json["rules"]!.AsArray().Single(r => (int)r!["bits"]! == 8 && ((string)r["service"]!).StartsWith("20", StringComparison.Ordinal))!;
        Assert.Equal("2000000000000000000000000000000000000000000000000000000000000000/8", (string)rule["prefix"]!);
        Assert.Equal("drop", (string)rule["target"]!["type"]!);
        Assert.Equal(4, (int)rule["priority"]!);
        Assert.Equal(1, (int)rule["weight"]!);
        Assert.Equal(0, (long)rule["packetsResolved"]!);
        Assert.NotNull(rule["bytesResolved"]);
        Assert.NotNull(rule["packetsDropped"]);
    }

    [Theory]
    [InlineData("1234", "000004d2")]
    [InlineData("0xabc", "abc0")]
    [InlineData("0x30/16", "3000")]
    [InlineData("0x31:16", "3100")]
    [InlineData("3232000000000000000000000000000000000000000000000000000000000000", "3232")]
    public void Add_accepts_the_reference_serviceID_forms(string id, string hexStart)
    {
        var add = daemon.Run("service", "add", id, "delay");
        Assert.True(add.ExitCode == 0, add.ToString());
        var rules = daemon.Run("service", "list", "--json").Json["rules"]!.AsArray();
        Assert.Contains(rules, r => ((string)r!["service"]!).StartsWith(hexStart, StringComparison.Ordinal) && (string)r["target"]!["type"]! == "delay");
    }

    [Fact]
    public void A_service_added_by_name_is_listed_as_name_and_short_id()
    {
        var id = ServiceId.FromName("shop.names");
        var add = daemon.Run("service", "add", "shop.names", "127.0.0.202");
        Assert.True(add.ExitCode == 0, add.ToString());
        try
        {
            var json = daemon.Run("service", "list", "--json").Json["rules"]!.AsArray();
            Assert.Contains(json, r => (string?)r!["name"] == "shop.names" && (string)r["service"]! == id.ToString());
            var table = daemon.Run("service", "list");
            Assert.Contains($"shop.names ({id.ToString()[..8]}…)", table.Output, StringComparison.Ordinal);
        }
        finally
        {
            daemon.Run("service", "del", "shop.names", "127.0.0.202");
        }
    }

    [Fact]
    public void Add_and_del_accept_a_service_name_as_the_API_hashes_it()
    {
        var id = ServiceId.FromName("shop.api").ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        var add = daemon.Run("service", "add", "shop.api", "127.0.0.201");
        Assert.True(add.ExitCode == 0, add.ToString());
        var rules = daemon.Run("service", "list", "--json").Json["rules"]!.AsArray();
        Assert.Contains(rules, r => (string)r!["service"]! == id && (int)r["bits"]! == 256);

        var del = daemon.Run("service", "del", "name=shop.api", "127.0.0.201");
        Assert.True(del.ExitCode == 0, del.ToString());
        rules = daemon.Run("service", "list", "--json").Json["rules"]!.AsArray();
        Assert.DoesNotContain(rules, r => (string)r!["service"]! == id);
    }

    [Theory]
    [InlineData("12ab")] // only hex digits: meant as an ID, and not a valid one
    [InlineData("0xzz")]
    [InlineData("shop.api/300")]
    public void A_mistyped_ID_is_not_taken_for_a_name(string text)
    {
        var add = daemon.Run("service", "add", text, "drop");
        Assert.Equal(2, add.ExitCode);
        Assert.Contains("malformed serviceID", add.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Default_is_the_zero_length_prefix()
    {
        var add = daemon.Run("service", "add", "default", "127.0.0.201:4000");
        Assert.True(add.ExitCode == 0, add.ToString());
        var rules = daemon.Run("service", "list", "--json").Json["rules"]!.AsArray();
        Assert.Contains(rules, r => (int)r!["bits"]! == 0 && (string)r["target"]!["address"]! == "127.0.0.201:4000");
        Assert.Contains("default", daemon.Run("service", "list").Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Del_removes_the_rule()
    {
        Assert.Equal(0, daemon.Run("service", "add", "0x40/8", "127.0.0.202").ExitCode);
        var del = daemon.Run("service", "del", "0x40/8", "127.0.0.202");
        Assert.True(del.ExitCode == 0, del.ToString());
        Assert.DoesNotContain(daemon.Run("service", "list", "--json").Json["rules"]!.AsArray(), r => ((string)r!["prefix"]!).StartsWith("40", StringComparison.Ordinal));
    }

    [Fact]
    public void Del_of_an_unknown_rule_fails_with_exit_1()
    {
        var del = daemon.Run("service", "del", "0x41/8", "drop");
        Assert.Equal(1, del.ExitCode);
        Assert.Contains("no rule", del.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Adding_the_same_rule_twice_fails_with_exit_1()
    {
        Assert.Equal(0, daemon.Run("service", "add", "0x42/8", "drop").ExitCode);
        var again = daemon.Run("service", "add", "0x42/8", "drop");
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("already exists", again.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Mod_changes_priority_and_weight()
    {
        Assert.Equal(0, daemon.Run("service", "add", "0x43/8", "127.0.0.203").ExitCode);
        var mod = daemon.Run("service", "mod", "0x43/8", "127.0.0.203", "--weight", "7", "priority", "3");
        Assert.True(mod.ExitCode == 0, mod.ToString());
        var rule = daemon.Run("service", "list", "--json").Json["rules"]!.AsArray().Single(r => ((string)r!["prefix"]!).StartsWith("43", StringComparison.Ordinal))!;
        Assert.Equal(7, (int)rule["weight"]!);
        Assert.Equal(3, (int)rule["priority"]!);
    }

    [Fact]
    public void Mod_without_a_setting_is_a_usage_error()
    {
        var mod = daemon.Run("service", "mod", "0x44/8", "drop");
        Assert.Equal(2, mod.ExitCode);
        Assert.Contains("priority and/or weight", mod.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0xzz", "not a hex digit")]
    [InlineData("12ab", "expected 64 hex digits")]
    [InlineData("0x10/300", "from 0 to 256")]
    [InlineData("99999999999", "out of range")]
    public void Malformed_serviceID_is_a_usage_error_that_says_why(string id, string why)
    {
        var add = daemon.Run("service", "add", id, "drop");
        Assert.Equal(2, add.ExitCode);
        Assert.Contains("malformed serviceID", add.Error, StringComparison.Ordinal);
        Assert.Contains(why, add.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Malformed_target_fails_with_the_daemons_reason()
    {
        var add = daemon.Run("service", "add", "0x45/8", "nowhere");
        Assert.Equal(1, add.ExitCode);
        Assert.Contains("bad target", add.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_reference_setting_is_a_usage_error()
    {
        var add = daemon.Run("service", "add", "0x46/8", "drop", "colour", "3");
        Assert.Equal(2, add.ExitCode);
        Assert.Contains("unknown setting 'colour'", add.Error, StringComparison.Ordinal);
    }
}
