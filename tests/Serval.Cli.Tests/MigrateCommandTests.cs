using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Serval.Daemon;
using Serval.Links;
using Serval.Wire;

namespace Serval.Cli.Tests;

/// <summary>A servald with two UDP links and a peer host to connect to: the migrate commands end to end.</summary>
public sealed class TwoLinkDaemonFixture : IAsyncLifetime
{
    private static int s_next = Environment.ProcessId % 80;

    internal ServalDaemon Daemon { get; private set; } = null!;

    public ServalHost Peer { get; private set; } = null!;

    public string SocketPath { get; } = Path.Combine(Path.GetTempPath(), $"servald-test-{Guid.NewGuid():N}.sock");

    public async ValueTask InitializeAsync()
    {
        var n = Interlocked.Increment(ref s_next) % 80;
        Daemon = await ServalDaemon.StartAsync(
            new DaemonOptions
            {
                Name = "cli-migrate",
                ControlSocket = SocketPath,
                Udp = [new UdpEndpoint { Address = $"127.0.3.{(3 * n) + 2}", Port = 0 }, new UdpEndpoint { Address = $"127.0.3.{(3 * n) + 3}", Port = 0 }],
            },
            NullLoggerFactory.Instance);
        Peer = await ServalHost.StartAsync(new ServalHostOptions { Name = "cli-peer", Links = [new UdpLink(IPAddress.Parse($"127.0.3.{(3 * n) + 4}"), 0)] });
    }

    public async ValueTask DisposeAsync()
    {
        await Peer.DisposeAsync();
        await Daemon.DisposeAsync();
    }

    /// <summary>Runs servalctl with <c>--socket</c> pointing at this daemon.</summary>
    public CliResult Run(params string[] args) => CliResult.Run([.. args, "--socket", SocketPath]);
}

public sealed class MigrateCommandTests(TwoLinkDaemonFixture daemon) : IClassFixture<TwoLinkDaemonFixture>
{
    [Fact]
    public async Task Migrate_flow_interface_and_service_move_a_live_connection()
    {
        var ct = TestContext.Current.CancellationToken;
        var host = daemon.Daemon.Host;
        var service = ServiceId.FromNumber(4242);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = daemon.Peer, ListenEndPoint = new ServiceEndPoint(service) }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        await using var client = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = host, Service = service, AdvisoryAddress = daemon.Peer.Links[0].LocalAddress }, ct);
        await using var server = await accept;
        var flowId = (await client.GetFlowInfoAsync(ct))!.LocalFlow;
        Assert.Equal(1, await InterfaceOfAsync(client, ct));

        // flow: by interface number, JSON answer.
        var flow = daemon.Run("migrate", "flow", flowId.ToString(), "2", "--json");
        Assert.True(flow.ExitCode == 0, flow.ToString());
        Assert.Equal("flow", (string)flow.Json["kind"]!);
        Assert.Equal(2, (int)flow.Json["interface"]!);
        Assert.Equal(1, (int)flow.Json["migrating"]!);
        Assert.Equal(host.Links[1].Name, (string)flow.Json["link"]!);
        await WaitForInterfaceAsync(client, 2, ct);

        // interface: every flow of interface 2 back to interface 1, named by its address; table output.
        var iface = daemon.Run("migrate", "interface", "2", host.Links[0].LocalAddress.WithPort(0).ToString());
        Assert.True(iface.ExitCode == 0, iface.ToString());
        Assert.Contains("migrate interface: 1 flow moving to interface 1", iface.Output, StringComparison.Ordinal);
        await WaitForInterfaceAsync(client, 1, ct);

        // service: by serviceID (and its address with the port), then a service with no flows.
        var svc = daemon.Run("migrate", "service", "4242", host.Links[1].LocalAddress.ToString(), "--json");
        Assert.True(svc.ExitCode == 0, svc.ToString());
        Assert.Equal(1, (int)svc.Json["migrating"]!);
        await WaitForInterfaceAsync(client, 2, ct);
        var none = daemon.Run("migrate", "service", "4243", "1", "--json");
        Assert.True(none.ExitCode == 0, none.ToString());
        Assert.Equal(0, (int)none.Json["migrating"]!);

        // The flow list shows where it is; the connection still works.
        var list = daemon.Run("flow", "list", "--json");
        var row = list.Json["flows"]!.AsArray().Single(f => (uint)f!["localFlow"]! == flowId.Value)!; // one flowID type: a number, as migrate takes it
        Assert.Equal(2, (int)row["interface"]!);
        Assert.Equal(host.Links[1].LocalAddress.ToString(), (string)row["localAddress"]!);
        await client.GetStream().WriteAsync(new byte[] { 9, 8, 7 }, ct);
        var buffer = new byte[3];
        await server.GetStream().ReadExactlyAsync(buffer, ct);
        Assert.Equal(new byte[] { 9, 8, 7 }, buffer);

        // Moving it to where it already is.
        var same = daemon.Run("migrate", "flow", flowId.ToString(), "2");
        Assert.Equal(1, same.ExitCode);
        Assert.Contains("already uses link 1", same.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("flow 4000000000 2", "No flow has the local flowID 4000000000")]
    [InlineData("flow 0x10 7", "no interface 7: this host's links are interfaces 1 to 2")]
    [InlineData("flow 5 0", "no interface 0")]
    [InlineData("interface 1 eth-none", "unknown interface 'eth-none'")]
    [InlineData("interface 1 10.9.9.9", "no link of this host has the address 10.9.9.9")]
    [InlineData("interface 2 2", "is both source and destination")]
    [InlineData("service 0x10/8 lo", "no link of this host is on interface 'lo'")]
    public void Migrate_errors_name_the_problem(string args, string message)
    {
        var migrate = daemon.Run(["migrate", .. args.Split(' '), "--json"]);
        Assert.True(migrate.ExitCode == 1, migrate.ToString());
        Assert.Contains(message, migrate.Error, StringComparison.Ordinal);
        Assert.Empty(migrate.Output);
    }

    private static async Task<int> InterfaceOfAsync(ServalConnection connection, CancellationToken ct) =>
        (await connection.GetFlowInfoAsync(ct))!.Interface;

    private static Task WaitForInterfaceAsync(ServalConnection connection, int iface, CancellationToken ct) =>
        Eventually.UntilAsync(
            async () => (await connection.GetFlowInfoAsync(ct))! is var info ? (info.Interface, info.Migration) : default,
            seen => seen.Interface == iface && seen.Migration == Stack.MigrationState.None,
            $"the flow to reach interface {iface} with no migration in progress (interface, migration)",
            TimeSpan.FromSeconds(10),
            TimeSpan.FromMilliseconds(5),
            ct);
}
