using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Serval.Daemon;
using Serval.Wire;

namespace Serval.Cli.Tests;

/// <summary>
/// A service an attached application binds by name: the name travels with the listen request, and servald's tables
/// (<c>servalctl service list</c>, <c>flow list</c>) and log lines show <c>name (short id)</c>, as for services servald
/// was told the name of.
/// </summary>
public sealed class AttachedNamesTests
{
    [Fact]
    public async Task A_service_an_attached_application_binds_by_name_is_shown_by_name_in_tables_flows_and_logs()
    {
        var ct = TestContext.Current.CancellationToken;
        using var logs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        var path = Path.Combine(Path.GetTempPath(), $"servald-names-{Guid.NewGuid():N}.sock");
        await using var daemon = await ServalDaemon.StartAsync(DaemonTests.Options(path), loggerFactory, ct);
        await using var app = await ServalHost.AttachAsync(path, ct);

        const string name = "shop.attached";
        var id = ServiceId.FromName(name);
        var label = $"{name} ({id.ToString()[..8]}…)";
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = app, ListenEndPoint = ServiceEndPoint.Parse(name) }, ct);
        Assert.Equal(name, listener.LocalEndPoint.Name);

        // A service bound by serviceID only stays unnamed.
        var unnamed = ServiceId.FromName("shop.unnamed");
        await using var other = await ServalListener.ListenAsync(new ServalListenerOptions { Host = app, ListenEndPoint = new ServiceEndPoint(unnamed) }, ct);

        var rules = CliResult.Run("service", "list", "--json", "--socket", path);
        Assert.True(rules.ExitCode == 0, rules.ToString());
        var rule = rules.Json["rules"]!.AsArray().FirstOrDefault(r => (string?)r!["service"] == id.ToString());
        Assert.True(rule is not null, $"no rule for {id}: {rules}");
        Assert.True((string?)rule["name"] == name, $"the rule of {id} carries no name '{name}': {rule.ToJsonString()}");
        var unnamedRule = rules.Json["rules"]!.AsArray().FirstOrDefault(r => (string?)r!["service"] == unnamed.ToString());
        Assert.True(unnamedRule is not null && unnamedRule["name"] is null, $"the rule of the unnamed service: {unnamedRule?.ToJsonString()}");

        var table = CliResult.Run("service", "list", "--socket", path);
        Assert.True(table.ExitCode == 0 && table.Output.Contains(label, StringComparison.Ordinal), $"service list lacks '{label}': {table}");

        // A flow to it (from servald's own host, which does not know the name by itself).
        var accept = listener.AcceptConnectionAsync(ct);
        await using var client = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = daemon.Host, Service = id }, ct);
        await using var server = await accept;
        var flows = CliResult.Run("flow", "list", "--json", "--socket", path);
        Assert.True(flows.ExitCode == 0, flows.ToString());
        var toService = flows.Json["flows"]!.AsArray().Where(f => (string?)f!["service"] == id.ToString()).ToList();
        Assert.True(toService.Count >= 1 && toService.All(f => (string?)f!["serviceName"] == name), $"flows of {id} not named '{name}': {flows.Output}");
        var flowTable = CliResult.Run("flow", "list", "--socket", path);
        Assert.True(flowTable.Output.Contains(label, StringComparison.Ordinal), $"flow list lacks '{label}': {flowTable}");

        // servald's log: the application listens on the service, by name.
        await Eventually.UntilAsync(
            () => ValueTask.FromResult(logs.Has(LogLevel.Information, $"listens on {label} (stream)")),
            seen => seen,
            $"servald logging that an application listens on {label}; lines:\n{logs.Dump()}",
            cancellationToken: ct);
    }

    [Fact]
    public async Task A_name_that_does_not_hash_to_the_service_is_not_learnt()
    {
        var ct = TestContext.Current.CancellationToken;
        var path = Path.Combine(Path.GetTempPath(), $"servald-names-{Guid.NewGuid():N}.sock");
        await using var daemon = await ServalDaemon.StartAsync(DaemonTests.Options(path), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, ct);

        // A raw listen request naming the wrong service: the listener is bound, the name ignored.
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(path), ct);
        var id = ServiceId.FromName("shop.real");
        var request = System.Text.Encoding.UTF8.GetBytes(new JsonObject { ["op"] = "listen", ["service"] = id.ToString(), ["name"] = "shop.fake" }.ToJsonString());
        var frame = new byte[4 + 5 + request.Length]; // preamble, then a Request frame (docs/daemon-mode.md)
        new byte[] { 0xA5, (byte)'S', (byte)'V', 1 }.CopyTo(frame, 0);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(4), request.Length + 1);
        frame[8] = 0x01;
        request.CopyTo(frame, 9);
        await socket.SendAsync(frame, System.Net.Sockets.SocketFlags.None, ct);
        var header = new byte[5];
        await socket.ReceiveAsync(header, System.Net.Sockets.SocketFlags.None, ct);
        var reply = new byte[System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(header) - 1];
        var got = 0;
        while (got < reply.Length)
        {
            got += await socket.ReceiveAsync(reply.AsMemory(got), System.Net.Sockets.SocketFlags.None, ct);
        }

        var text = System.Text.Encoding.UTF8.GetString(reply);
        Assert.True(header[4] == 0x02 && text.Contains("\"ok\":true", StringComparison.Ordinal), $"listen reply: {text}");

        var rules = CliResult.Run("service", "list", "--json", "--socket", path);
        var rule = rules.Json["rules"]!.AsArray().FirstOrDefault(r => (string?)r!["service"] == id.ToString());
        Assert.True(rule is not null && rule["name"] is null, $"the rule of {id}: {rule?.ToJsonString()} in {rules}");
    }
}
