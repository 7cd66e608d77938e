using System.Net;
using System.Security.Cryptography;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Failover on real interfaces: a mobile host with two veth interfaces (two subnets) to a peer, one UDP link per
/// interface; mid-transfer the first interface goes down or loses its address, the host's interface monitor notices,
/// and the engine moves the flow to the second interface. Needs root (network namespaces).
/// </summary>
[Trait("Tier", "netns")]
public sealed class NetnsMigrationTests
{
    private const string MobileA = "10.61.1.1";
    private const string MobileB = "10.61.2.1";
    private const string PeerAddress = "10.61.9.1";
    private static readonly ServiceId Svc = ServiceId.FromName("test.netns.failover");

    [Theory]
    [InlineData("link-down")]
    [InlineData("address-removed")]
    public async Task A_transfer_survives_losing_its_interface(string how)
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(90);
        await using var mobileNs = NetNamespace.Create("mob");
        await using var peerNs = NetNamespace.Create("peer");
        Build(mobileNs, peerNs);

        await using var peer = peerNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "peer",
            Links = [new UdpLink(IPAddress.Parse(PeerAddress))],
            Engine = TestNet.FastEngine,
        }).AsTask().GetAwaiter().GetResult());
        await using var mobile = mobileNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "mobile",
            Links = [new UdpLink(IPAddress.Parse(MobileA)), new UdpLink(IPAddress.Parse(MobileB))],
            Engine = TestNet.FastEngine,
            InterfaceMonitorInterval = TimeSpan.FromSeconds(5), // the netlink notification, not the rescan, must do it
        }).AsTask().GetAwaiter().GetResult());

        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = peer, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions
        {
            Host = mobile,
            Service = Svc,
            AdvisoryAddress = peer.Address(),
        }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);
        Assert.Equal(1, (await connection.GetFlowInfoAsync(ct))!.Interface);

        var data = new byte[48 * 1024 * 1024];
        new Random(61).NextBytes(data);
        long received = 0;
        var reader = Task.Run(async () =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[256 * 1024];
            var stream = accepted.GetStream();
            int n;
            while ((n = await stream.ReadAsync(buffer, ct)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                Interlocked.Add(ref received, n);
            }

            return hash.GetHashAndReset();
        }, ct);
        var writer = Task.Run(async () =>
        {
            var stream = connection.GetStream();
            for (var offset = 0; offset < data.Length; offset += 64 * 1024)
            {
                await stream.WriteAsync(data.AsMemory(offset, Math.Min(64 * 1024, data.Length - offset)), ct);
            }

            stream.CompleteWrites();
        }, ct);

        // Mid-transfer: take the first interface away.
        await PollAsync(() => Interlocked.Read(ref received) >= data.Length / 8 || writer.IsCompleted, "the transfer to start", ct);
        Assert.True(Interlocked.Read(ref received) < data.Length, "the transfer finished before the interface went away; make it longer");
        var startedBefore = mobile.Counters.MigrationsStarted;
        if (how == "link-down")
        {
            mobileNs.SetLink("mv0", false);
        }
        else
        {
            mobileNs.Ip("addr", "del", $"{MobileA}/24", "dev", "mv0");
        }

        await writer;
        var digest = await reader;
        Assert.Equal(SHA256.HashData(data), digest);
        Assert.Equal(data.Length, Interlocked.Read(ref received));

        // The monitor set link 0 down; the engine moved the flow to link 1 with an RSYN that the peer answered.
        var interfaces = await mobile.GetInterfacesAsync(ct);
        Assert.False(interfaces[1].IsUp);
        Assert.True(interfaces[2].IsUp);
        Assert.True(mobile.Counters.MigrationsStarted > startedBefore, "no migration started");
        Assert.True(mobile.Counters.MigrationsCompleted >= 1, "no migration completed");
        Assert.Equal(0, mobile.Counters.MigrationsFailed);
        var flow = await connection.GetFlowInfoAsync(ct);
        Assert.Equal(2, flow!.Interface);
        Assert.Equal(mobile.Address(1), flow.LocalAddress);
        Assert.Equal(mobile.Address(1), (await accepted.GetFlowInfoAsync(ct))!.PeerAddress);

        // The interface comes back: the monitor sets the link up again.
        if (how == "link-down")
        {
            mobileNs.SetLink("mv0", true);
        }
        else
        {
            mobileNs.Ip("addr", "add", $"{MobileA}/24", "dev", "mv0");
        }

        await PollAsync(async () => (await mobile.GetInterfacesAsync(ct))[1].IsUp, "link 0 to come back up", ct);
    }

    [Fact]
    public async Task The_host_triggers_move_flows_and_report_errors()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(60);
        await using var mobileNs = NetNamespace.Create("mob");
        await using var peerNs = NetNamespace.Create("peer");
        Build(mobileNs, peerNs);
        await using var peer = peerNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "peer",
            Links = [new UdpLink(IPAddress.Parse(PeerAddress))],
        }).AsTask().GetAwaiter().GetResult());
        await using var mobile = mobileNs.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "mobile",
            Links = [new UdpLink(IPAddress.Parse(MobileA)), new UdpLink(IPAddress.Parse(MobileB))],
            MonitorInterfaces = false,
        }).AsTask().GetAwaiter().GetResult());
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = peer, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = mobile, Service = Svc, AdvisoryAddress = peer.Address() }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);

        async Task<FlowInfo> MovedAsync(int iface)
        {
            FlowInfo? info = null;
            await PollAsync(async () => (info = await connection.GetFlowInfoAsync(ct))!.Interface == iface && info.Migration == MigrationState.None, $"the flow to reach interface {iface}", ct);
            return info!;
        }

        Assert.Equal(1, await mobile.Admin.MigrateLinkAsync(0, 1, ct));
        await MovedAsync(2);
        Assert.Equal(1, await mobile.Admin.MigrateServiceAsync(new ServicePrefix(Svc, 256), 0, ct));
        await MovedAsync(1);
        Assert.Equal(0, await mobile.Admin.MigrateServiceAsync(new ServicePrefix(ServiceId.FromName("other"), 256), 1, ct));
        var local = (await connection.GetFlowInfoAsync(ct))!.LocalFlow;
        await mobile.Admin.MigrateFlowAsync(local, 1, ct);
        await MovedAsync(2);

        var e = await Assert.ThrowsAsync<ServalException>(async () => await mobile.Admin.MigrateFlowAsync(local, 1, ct));
        Assert.Equal(ServalError.InvalidArgument, e.Error);
        Assert.Contains("already uses link 1", e.Message, StringComparison.Ordinal);
        e = await Assert.ThrowsAsync<ServalException>(async () => await mobile.Admin.MigrateFlowAsync(new FlowId(0xdead), 0, ct));
        Assert.Equal(ServalError.BadHandle, e.Error);
        e = await Assert.ThrowsAsync<ServalException>(async () => await mobile.Admin.MigrateLinkAsync(0, 5, ct));
        Assert.Equal(ServalError.InvalidArgument, e.Error);
        Assert.Contains("indices 0 to 1", e.Message, StringComparison.Ordinal);
        e = await Assert.ThrowsAsync<ServalException>(async () => await mobile.Admin.MigrateLinkAsync(1, 1, ct));
        Assert.Equal(ServalError.InvalidArgument, e.Error);

        // Set link 1 (the flow's) down by hand: the flow moves back to link 0, and link 1 refuses migrations.
        await mobile.Admin.SetLinkUpAsync(1, false, ct);
        await MovedAsync(1);
        e = await Assert.ThrowsAsync<ServalException>(async () => await mobile.Admin.MigrateLinkAsync(0, 1, ct));
        Assert.Equal(ServalError.NetworkDown, e.Error);
        await mobile.Admin.SetLinkUpAsync(1, true, ct);
        Assert.True((await mobile.GetInterfacesAsync(ct))[2].IsUp);

        // The connection still carries data both ways.
        await connection.GetStream().WriteAsync(new byte[] { 1, 2, 3 }, ct);
        var buffer = new byte[3];
        await accepted.GetStream().ReadExactlyAsync(buffer, ct);
        Assert.Equal(new byte[] { 1, 2, 3 }, buffer);
    }

    /// <summary>
    /// Two veth pairs between the namespaces (10.61.1.0/24 and 10.61.2.0/24); the peer's service address 10.61.9.1 is
    /// on its loopback. The mobile host routes by source address: from 10.61.1.1 through the first pair, from
    /// 10.61.2.1 through the second, so each link really uses its own interface.
    /// </summary>
    internal static void Build(NetNamespace mobile, NetNamespace peer)
    {
        Veth.Connect(mobile, "mv0", $"{MobileA}/24", peer, "pv0", "10.61.1.2/24");
        Veth.Connect(mobile, "mv1", $"{MobileB}/24", peer, "pv1", "10.61.2.2/24");
        peer.Ip("addr", "add", $"{PeerAddress}/32", "dev", "lo");
        mobile.Ip("rule", "add", "from", MobileA, "table", "101", "pref", "1001");
        mobile.Ip("route", "add", $"{PeerAddress}/32", "via", "10.61.1.2", "table", "101");
        mobile.Ip("rule", "add", "from", MobileB, "table", "102", "pref", "1002");
        mobile.Ip("route", "add", $"{PeerAddress}/32", "via", "10.61.2.2", "table", "102");
    }

    private static Task PollAsync(Func<bool> condition, string what, CancellationToken ct) =>
        Eventually.TrueAsync(condition, what, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(5), ct);

    private static Task PollAsync(Func<ValueTask<bool>> condition, string what, CancellationToken ct) =>
        Eventually.TrueAsync(condition, what, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(5), ct);
}
