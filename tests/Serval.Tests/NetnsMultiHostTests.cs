using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// A client, a service router and two replicas, each in its own network namespace, on separate veth links (the
/// <see cref="StarNetwork"/> topology: router namespace in the middle with one veth to each of the other three, subnets
/// 10.91.1.0/24, 10.91.2.0/24 and 10.91.3.0/24, IP forwarding on in the router namespace). The client's default rule
/// points at the service router, whose two FORWARD rules (equal weights) spread SYNs over the replicas; each replica
/// answers the client directly (SOURCE extension), so after the SYN everything goes straight between client and
/// replica, IP-routed by the router namespace's kernel. Checked: 50 MiB (25 MiB per replica, echoed back) arrive with
/// equal SHA-256, both replicas served connections, and the service router's engine saw nothing but the SYNs it
/// forwarded. Run over raw IP (protocol 144) and over UDP encapsulation, with all hosts in this process (links created
/// inside the namespaces), and over UDP with the router and the replicas as separate <c>serval-demo</c> processes.
/// Over raw IP a packet socket in the client's namespace also checks every packet on the client's veth against the
/// reference implementation's layout (<see cref="ReferenceLayout"/>). Needs root (namespaces; raw IP); skipped otherwise.
/// </summary>
[Trait("Tier", "netns")]
public sealed class NetnsMultiHostTests(ITestOutputHelper output)
{
    private const string ServiceName = "test.netns.echo";
    private const int BytesPerReplica = 25 * 1024 * 1024;
    private const int MaxConnections = 40;
    private static readonly ServiceId Service = ServiceId.FromName(ServiceName);

    /// <summary>The underlay a test case runs on.</summary>
    public enum Underlay
    {
        /// <summary>Raw IPv4, protocol 144.</summary>
        RawIp,

        /// <summary>UDP encapsulation, port 54325.</summary>
        Udp,
    }

    private static void RequireNamespaces(Underlay underlay)
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        Assert.SkipUnless(underlay != Underlay.RawIp || RawIpLink.IsSupported, "Raw IP protocol 144 needs CAP_NET_RAW; run the tests as root to include this case.");
    }

    private static ServalLink Link(Underlay underlay, NetNamespace ns, IPAddress address) =>
        ns.Invoke<ServalLink>(() => underlay == Underlay.RawIp ? new RawIpLink(address) : new UdpLink(address));

    [Theory]
    [InlineData(Underlay.RawIp)]
    [InlineData(Underlay.Udp)]
    public async Task Client_router_and_two_replicas_in_four_namespaces_move_50_MiB(Underlay underlay)
    {
        RequireNamespaces(underlay);
        var clock = Stopwatch.StartNew();
        var ct = TestNet.Timeout(100);
        await using var net = StarNetwork.Create();
        var engine = TestNet.FastEngine;

        var replicas = new ServalHost[2];
        var listeners = new ServalListener[2];
        await using var router = await ServalHost.StartAsync(
            new ServalHostOptions
            {
                Name = "netns-router",
                Links = [.. StarNetwork.RouterAddresses.Select(a => Link(underlay, net.Router, a))],
                Engine = engine with { Mode = EngineMode.ServiceRouter },
            },
            ct);
        try
        {
            for (var i = 0; i < 2; i++)
            {
                replicas[i] = await ServalHost.StartAsync(new ServalHostOptions { Name = $"netns-replica{i + 1}", Links = [Link(underlay, net.Replicas[i], StarNetwork.ReplicaAddresses[i])], Engine = engine }, ct);
                listeners[i] = await StreamTests.EchoServerAsync(replicas[i], Service, ct);

                // Link i + 2 of the router is the veth towards replica i (interface indexes start at 1).
                await router.Admin.AddRuleAsync(ServicePrefix.Exact(Service), ServiceTarget.Forward(replicas[i].Address(), i + 2), weight: 1, cancellationToken: ct);
            }

            await using var client = await ServalHost.StartAsync(
                new ServalHostOptions { Name = "netns-client", Links = [Link(underlay, net.Client, StarNetwork.ClientAddress)], Engine = engine, DefaultRouter = router.Address(0) },
                ct);
            var devicesBefore = RouterDevices(net);

            // Over raw IP, a packet socket in the client's namespace sees the real packets on the client's veth (both
            // directions, kernel-made IPv4 headers) and checks each against the reference's layout.
            using var tap = underlay == Underlay.RawIp ? net.Client.Invoke(() => PacketTap.OnInterfaces(client.Address())) : null;
            var result = await RunClientAsync(client, [replicas[0].Address(), replicas[1].Address()], ct);
            var tapReport = string.Empty;
            if (tap is not null)
            {
                // Every connection has closed (SAL FIN and ACK both ways) before the tap stops.
                Assert.True(await TestNet.EventuallyAsync(async () => await client.GetFlowCountAsync(ct) == 0, seconds: 20), "connections did not close");
                tap.Dispose();
                Assert.True(tap.Failures.Count == 0, string.Join("\n", tap.Failures));
                // The tap reads as fast as it can; at full speed its socket may drop some packets (the flows do not
                // notice), so it checks a large sample, which must still include every kind of packet.
                Assert.True(tap.Packets.Count > 1000, $"the tap saw only {tap.Packets.Count} packets");
                RawIpLayoutTests.AssertReferenceLayout(tap.Packets, requireEveryKind: true, minConnections: result.Connections);
                RawIpLayoutTests.AssertReferenceIPLayout(tap.Packets, "sr_syn_a.pcap");
                tapReport = $"; {tap.Packets.Count} packets on the client's veth checked against the reference layout";
            }

            // Both replicas served connections and carried their share of the data.
            for (var i = 0; i < 2; i++)
            {
                Assert.True(result.ConnectionsPerReplica[i] >= 1, $"replica {i + 1} served no connection");
                Assert.True(replicas[i].Counters.BytesReceived > BytesPerReplica, $"replica {i + 1} received {replicas[i].Counters.BytesReceived} bytes");
                Assert.Equal(0, replicas[i].Counters.BadTransportChecksum);
                Assert.Equal(0, replicas[i].Counters.Malformed);
            }

            // The service router's engine saw only the SYNs (and any retransmission of them), each forwarded; both
            // rules resolved some. The data went directly: the router namespace's kernel forwarded it at the IP level.
            var forwarded = router.Counters.Forwarded;
            Assert.InRange(forwarded, result.Connections, 2 * result.Connections);
            // Besides them it received only router solicitations (hosts look for a router on links with a broadcast
            // address: the UDP links here; nobody answers, this router does not advertise). Read after the router's
            // count, the hosts' own counts of solicitations sent bound it from above.
            var others = router.Counters.PacketsReceived - forwarded;
            long solicited = 0;
            foreach (var host in new[] { replicas[0], replicas[1], client })
            {
                solicited += (await host.Admin.GetRouterDiscoveryAsync(ct))?.Counters.SolicitationsSent ?? 0;
            }

            Assert.True(others >= 0 && others <= solicited, $"the router received {others} packets besides the {forwarded} SYNs it forwarded; the hosts sent {solicited} router solicitations");
            if (underlay != Underlay.Udp)
            {
                Assert.Equal(0, solicited);
            }
            var rules = router.Admin.GetRules().Where(r => r.Prefix == ServicePrefix.Exact(Service)).ToList();
            Assert.Equal(2, rules.Count);
            Assert.All(rules, r => Assert.True(r.PacketsResolved >= 1, $"rule {r} resolved no SYN"));
            Assert.Equal(forwarded, rules.Sum(r => r.PacketsResolved));
            var devices = RouterDevices(net);
            for (var d = 0; d < 3; d++)
            {
                // r1 (client side) carries both replicas' data, r2 and r3 one replica's each, in both directions.
                var expected = d == 0 ? 2L * BytesPerReplica : BytesPerReplica;
                var received = devices[d].Received - devicesBefore[d].Received;
                var sent = devices[d].Sent - devicesBefore[d].Sent;
                Assert.True(received > expected && sent > expected, $"router device r{d + 1} received {received} and sent {sent} bytes, expected more than {expected}");
            }

            Assert.Equal(0, client.Counters.BadTransportChecksum);
            Assert.Equal(0, client.Counters.Malformed);
            output.WriteLine($"{underlay}: {result.Connections} connections ({result.ConnectionsPerReplica[0]} + {result.ConnectionsPerReplica[1]}), {2 * BytesPerReplica >> 20} MiB echoed in {result.TransferTime.TotalSeconds:F1} s; service router forwarded {forwarded} packets{tapReport}; whole test {clock.Elapsed.TotalSeconds:F1} s");
        }
        finally
        {
            for (var i = 0; i < 2; i++)
            {
                if (listeners[i] is { } l)
                {
                    await l.DisposeAsync();
                }

                if (replicas[i] is { } r)
                {
                    await r.DisposeAsync();
                }
            }
        }
    }

    [Fact]
    public async Task Router_and_replicas_as_separate_processes_in_their_namespaces_over_udp()
    {
        RequireNamespaces(Underlay.Udp);
        var clock = Stopwatch.StartNew();
        var ct = TestNet.Timeout(100);
        await using var net = StarNetwork.Create();
        string[] nextHops = [.. StarNetwork.ReplicaAddresses.Select(a => a.ToString())];
        var replicas = new Process[2];
        for (var i = 0; i < 2; i++)
        {
            replicas[i] = StartDemo(net.Replicas[i], "echo-server", StarNetwork.ReplicaAddresses[i].ToString(), ServiceName);
        }

        var router = StartDemo(net.Router, ["router", StarNetwork.RouterAddresses[0].ToString(), ServiceName, .. nextHops]);
        var routerAddress = await WaitReadyAsync(router, "router", ct);
        var replicaAddresses = new LinkAddress[2];
        for (var i = 0; i < 2; i++)
        {
            replicaAddresses[i] = await WaitReadyAsync(replicas[i], $"replica {i + 1}", ct);
        }

        var devicesBefore = RouterDevices(net);
        ClientResult result;
        await using (var client = await ServalHost.StartAsync(
            new ServalHostOptions { Name = "netns-client", Links = [Link(Underlay.Udp, net.Client, StarNetwork.ClientAddress)], Engine = TestNet.FastEngine, DefaultRouter = routerAddress },
            ct))
        {
            result = await RunClientAsync(client, replicaAddresses, ct);
            Assert.Equal(0, client.Counters.BadTransportChecksum);
        }

        // The router process reports its engine's counters when its input closes: only the SYNs reached it.
        router.StandardInput.Close();
        var summary = await router.StandardOutput.ReadToEndAsync(ct).WaitAsync(TimeSpan.FromSeconds(20), ct);
        var words = summary.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
        var at = Array.IndexOf(words, "FORWARDED");
        Assert.True(at >= 0 && words.Length > at + 3 && words[at + 2] == "RECEIVED", $"router printed '{summary}'");
        var forwarded = long.Parse(words[at + 1], System.Globalization.CultureInfo.InvariantCulture);
        var received = long.Parse(words[at + 3], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(forwarded, result.Connections, 2 * result.Connections);

        // Only connection setup reached the router process: a handful of packets (a late duplicate may be received and
        // not forwarded) against the tens of thousands of data packets of the transfer.
        Assert.InRange(received, forwarded, forwarded + (2 * result.Connections));
        var devices = RouterDevices(net);
        for (var i = 0; i < 2; i++)
        {
            Assert.True(result.ConnectionsPerReplica[i] >= 1, $"replica {i + 1} served no connection");
            var sent = devices[i + 1].Sent - devicesBefore[i + 1].Sent;
            Assert.True(sent > BytesPerReplica, $"router device r{i + 2} sent only {sent} bytes towards replica {i + 1}");
            replicas[i].StandardInput.Close();
        }

        output.WriteLine($"processes: {result.Connections} connections ({result.ConnectionsPerReplica[0]} + {result.ConnectionsPerReplica[1]}), {2 * BytesPerReplica >> 20} MiB echoed in {result.TransferTime.TotalSeconds:F1} s; router process forwarded {forwarded} of {received} packets; whole test {clock.Elapsed.TotalSeconds:F1} s");

        // Disposing the namespaces kills (by process id) whatever has not exited yet.
    }

    private static string DemoDll => Path.Combine(AppContext.BaseDirectory, "serval-demo.dll");

    private static Process StartDemo(NetNamespace ns, params string[] arguments) =>
        ns.Start(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", [DemoDll, .. arguments]);

    private static async Task<LinkAddress> WaitReadyAsync(Process process, string what, CancellationToken ct)
    {
        var line = await process.StandardOutput.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(30), ct);
        if (line is null || !line.StartsWith("READY ", StringComparison.Ordinal))
        {
            var error = process.HasExited ? await process.StandardError.ReadToEndAsync(ct) : string.Empty;
            Assert.Fail($"{what} said '{line}' instead of READY; {error}");
        }

        return LinkAddress.Parse(line["READY ".Length..]);
    }

    private static (long Received, long Sent)[] RouterDevices(StarNetwork net) =>
        [net.RouterDeviceBytes("r1"), net.RouterDeviceBytes("r2"), net.RouterDeviceBytes("r3")];

    private sealed record ClientResult(int Connections, int[] ConnectionsPerReplica, TimeSpan TransferTime);

    /// <summary>
    /// Opens connections to the service until the router has sent one to each replica (bounded), echoes a little on the
    /// extra ones, then echoes <see cref="BytesPerReplica"/> on one connection per replica concurrently and checks the
    /// SHA-256 of what came back.
    /// </summary>
    private static async Task<ClientResult> RunClientAsync(ServalHost client, LinkAddress[] replicas, CancellationToken ct)
    {
        var perReplica = new int[2];
        var data = new ServalConnection?[2];
        var opened = 0;
        try
        {
            while ((data[0] is null || data[1] is null) && opened < MaxConnections)
            {
                var c = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Service }, ct);
                opened++;
                var info = await c.GetFlowInfoAsync(ct) ?? throw new InvalidOperationException("a new connection has no flow");
                var i = Array.FindIndex(replicas, r => r.SameAddress(info.PeerAddress));
                Assert.True(i >= 0, $"connection went to {info.PeerAddress}, not a replica");
                perReplica[i]++;
                if (data[i] is null)
                {
                    data[i] = c;
                    continue;
                }

                await using (c)
                {
                    var small = RandomNumberGenerator.GetBytes(4096);
                    Assert.Equal(small, await EchoAsync(c, small, ct));
                }
            }

            Assert.True(data[0] is not null && data[1] is not null, $"{opened} SYNs all went to one replica ({perReplica[0]} + {perReplica[1]})");
            var clock = Stopwatch.StartNew();
            var payloads = new[] { RandomNumberGenerator.GetBytes(BytesPerReplica), RandomNumberGenerator.GetBytes(BytesPerReplica) };
            var echoed = await Task.WhenAll(EchoAsync(data[0]!, payloads[0], ct), EchoAsync(data[1]!, payloads[1], ct));
            var elapsed = clock.Elapsed;
            for (var i = 0; i < 2; i++)
            {
                Assert.Equal(payloads[i].Length, echoed[i].Length);
                Assert.Equal(SHA256.HashData(payloads[i]), SHA256.HashData(echoed[i]));
            }

            return new ClientResult(opened, perReplica, elapsed);
        }
        finally
        {
            foreach (var c in data)
            {
                if (c is not null)
                {
                    await c.DisposeAsync();
                }
            }
        }
    }

    /// <summary>Writes <paramref name="payload"/> on the connection, closes its sending side, and returns what came back.</summary>
    private static async Task<byte[]> EchoAsync(ServalConnection connection, byte[] payload, CancellationToken ct)
    {
        var stream = connection.GetStream();
        var received = new MemoryStream(payload.Length);
        var reader = Task.Run(() => stream.CopyToAsync(received, ct), CancellationToken.None);
        for (var offset = 0; offset < payload.Length; offset += 256 * 1024)
        {
            await stream.WriteAsync(payload.AsMemory(offset, Math.Min(256 * 1024, payload.Length - offset)), ct);
        }

        stream.CompleteWrites();
        await reader;
        return received.ToArray();
    }
}
