using Serval.Wire;

namespace Serval.Cli.Tests;

public sealed class InspectCommandTests(DaemonFixture daemon) : IClassFixture<DaemonFixture>
{
    [Fact]
    public async Task Flow_list_shows_a_live_connection()
    {
        var host = daemon.Daemon.Host;
        var service = ServiceId.FromNumber(7777);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(service) }, TestContext.Current.CancellationToken);
        var accept = listener.AcceptConnectionAsync(TestContext.Current.CancellationToken);
        await using var client = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = host, Service = service }, TestContext.Current.CancellationToken);
        await using var server = await accept;

        var json = daemon.Run("flow", "list", "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        var flows = json.Json["flows"]!.AsArray();
        Assert.True(flows.Count >= 2, json.ToString());
        var flow = flows[0]!;
        foreach (var key in new[] { "socket", "localFlow", "peerFlow", "service", "protocol", "state", "migration", "interface", "localAddress", "peerAddress", "packetsSent", "packetsReceived", "bytesSent", "bytesReceived", "controlSrttMs" })
        {
            Assert.True(flow[key] is not null, $"missing {key}");
        }

        var table = daemon.Run("flow", "list");
        Assert.Equal(0, table.ExitCode);
        Assert.Contains("state", table.Output, StringComparison.Ordinal);
        Assert.Contains((string)flow["state"]!, table.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Flow_list_names_the_attached_application_that_owns_a_flow_and_gives_flowIDs_as_numbers()
    {
        var ct = TestContext.Current.CancellationToken;
        var service = ServiceId.FromNumber(7778);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = daemon.Daemon.Host, ListenEndPoint = new ServiceEndPoint(service) }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        await using var app = await ServalHost.AttachAsync(daemon.SocketPath, ct);
        await using var client = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = app, Service = service }, ct);
        await using var server = await accept;

        var json = daemon.Run("flow", "list", "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        var flows = json.Json["flows"]!.AsArray();
        var owned = flows.Where(f => f!["owner"] is System.Text.Json.Nodes.JsonObject o && (int)o["pid"]! == Environment.ProcessId).ToList();
        Assert.True(owned.Count >= 1, $"no flow owned by this process ({Environment.ProcessId}): {json}");
        Assert.False(string.IsNullOrEmpty((string?)owned[0]!["owner"]!["name"]));
        Assert.Equal(System.Text.Json.JsonValueKind.Number, owned[0]!["localFlow"]!.GetValueKind());
        Assert.Equal(System.Text.Json.JsonValueKind.Number, owned[0]!["peerFlow"]!.GetValueKind());

        // The table's app column: name[pid]; the accepting side, opened by servald's own host, has none.
        var table = daemon.Run("flow", "list");
        Assert.Contains($"[{Environment.ProcessId}]", table.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Stats_json_has_host_engine_and_table_counters()
    {
        var stats = daemon.Run("stats", "--json");
        Assert.True(stats.ExitCode == 0, stats.ToString());
        var json = stats.Json;
        Assert.Equal("cli-test", (string)json["host"]!["name"]!);
        Assert.Equal("Host", (string)json["host"]!["mode"]!);
        Assert.Single(json["host"]!["links"]!.AsArray());
        Assert.NotNull(json["engine"]!["packetsReceived"]);
        Assert.NotNull(json["engine"]!["noRoute"]);
        Assert.NotNull(json["engine"]!["migrationTimeMaxMs"]);
        Assert.NotNull(json["table"]!["entries"]);
        Assert.NotNull(json["table"]!["rules"]);
        Assert.NotNull(json["table"]!["packetsResolved"]);
    }

    [Fact]
    public void Stats_prints_a_counter_table()
    {
        var stats = daemon.Run("stats");
        Assert.True(stats.ExitCode == 0, stats.ToString());
        Assert.Contains("host cli-test (Host)", stats.Output, StringComparison.Ordinal);
        Assert.Contains("engine.packetsReceived", stats.Output, StringComparison.Ordinal);
        Assert.Contains("table.rules", stats.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("flow", "5", "1")]
    [InlineData("interface", "1", "1")]
    [InlineData("service", "0x10/8", "1")]
    public void Migrate_on_a_host_with_one_link_says_there_is_no_other_link(string kind, string a, string b)
    {
        var migrate = daemon.Run("migrate", kind, a, b, "--json");
        Assert.Equal(1, migrate.ExitCode);
        Assert.Contains("no other link", migrate.Error, StringComparison.Ordinal);
        Assert.Empty(migrate.Output);
    }

    [Fact]
    public void Migrate_with_a_malformed_flowID_is_a_usage_error()
    {
        var migrate = daemon.Run("migrate", "flow", "xyz", "eth0");
        Assert.Equal(2, migrate.ExitCode);
        Assert.Contains("malformed flowID", migrate.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Migrate_with_a_malformed_serviceID_is_a_usage_error()
    {
        var migrate = daemon.Run("migrate", "service", "0xq", "eth0");
        Assert.Equal(2, migrate.ExitCode);
        Assert.Contains("malformed serviceID", migrate.Error, StringComparison.Ordinal);
    }
}
