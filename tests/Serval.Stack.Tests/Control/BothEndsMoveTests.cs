using Serval.Simulation;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>
/// Both ends of a connection change their address at the same moment (docs/engine.md, "Both ends move"): neither
/// end's RSYN reaches the other's old address, so the connecting side also sends its RSYN towards the peer's service;
/// the service router forwards it to the peer's new registration, and the peer, now knowing the new address, sends its
/// own RSYN there at once.
/// </summary>
public sealed class BothEndsMoveTests
{
    private static readonly LinkAddress ClientMoved = LinkAddress.Parse("10.0.0.101");
    private static readonly LinkAddress ReplicaMoved = LinkAddress.Parse("10.0.0.111");

    private sealed record Moved(bool Completed, TimeSpan Gap, string Received, string Sent, ControlTopology Topology, ControlNode ClientNode, SocketHandle Client, SocketHandle Server);

    /// <summary>A client→replica transfer through the router; both renumber when a third of it has arrived.</summary>
    private static Moved TransferWhileBothMove(ulong seed, bool relay, double loss, TimeSpan patience)
    {
        var t = Build(
            seed,
            replicas: 1,
            conditions: LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(2), Loss = loss, BandwidthBitsPerSecond = 100_000_000, QueueBytes = 512 * 1024 });
        // Without the relay: a second client, the same as the topology's except that it never relays its RSYN.
        var (client, _, clientIface) = relay
            ? (t.Client, t.ClientController, InterfaceOf(t.Client, ClientAddr))
            : t.AddHost("client2", LinkAddress.Parse("10.0.0.2"), HostOptions(), EngineOptions.Default with { RelayRsyn = false });
        var listener = Listen(t.Replicas[0], Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Single(t.RouterTargets(Web));

        var c = client.Do(() => client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => client.Host.IsConnected(c), TimeSpan.FromSeconds(5)));
        var s = t.Net.AcceptOne(t.Replicas[0].Host, listener);

        var data = SimApp.RandomBytes(3 * 1024 * 1024, (int)seed);
        var sent = 0;
        var received = new MemoryStream();
        var buffer = new byte[65536];
        var moved = false;
        var done = false;
        TimeSpan movedAt = default, lastBefore = default, firstAfter = default;
        var completed = t.Net.RunUntil(
            () =>
            {
                while (sent < data.Length && client.Host.Engine.Write(c, data.AsSpan(sent), client.Now, out var n) == ServalError.None && n > 0)
                {
                    sent += n;
                }

                if (sent == data.Length)
                {
                    client.Host.Engine.CompleteWrites(c, client.Now);
                }

                client.Host.Pump();
                var server = t.Replicas[0].Host;
                while (server.Engine.Read(s, buffer, server.Now, out var n, out _) == ServalError.None && n > 0)
                {
                    received.Write(buffer, 0, n);
                    if (!moved)
                    {
                        lastBefore = server.Now;
                    }
                    else if (firstAfter == default && server.Now > movedAt)
                    {
                        firstAfter = server.Now;
                    }
                }

                server.Engine.Read(s, buffer, server.Now, out _, out done);
                server.Pump();
                if (!moved && received.Length >= data.Length / 3)
                {
                    moved = true;
                    movedAt = t.Net.Now;
                    // Both addresses change before either end transmits: no packet can reach an old address.
                    client.Host.Engine.SetInterfaceAddress(clientIface, ClientMoved, client.Now);
                    server.Engine.SetInterfaceAddress(t.ReplicaInterfaces[0], ReplicaMoved, server.Now);
                    client.Do(() => { });
                    t.Replicas[0].Do(() => { });
                }

                return done;
            },
            patience);
        return new Moved(completed, firstAfter - lastBefore, SimApp.Sha(received.ToArray()), SimApp.Sha(data), t, client, c, s);
    }

    private static int InterfaceOf(ControlNode node, LinkAddress address) =>
        node.Host.Engine.Interfaces.Single(i => i.Address == address).Index;

    [Theory]
    [InlineData(41UL, 0.0)]
    [InlineData(42UL, 0.01)]
    public void The_rsyn_relayed_through_the_router_reconnects_both_ends_and_every_byte_arrives(ulong seed, double loss)
    {
        var r = TransferWhileBothMove(seed, relay: true, loss, TimeSpan.FromMinutes(5));
        var t = r.Topology;
        Assert.True(r.Completed, "the transfer did not finish after both ends moved");
        Assert.Equal(r.Sent, r.Received);

        var cf = r.ClientNode.Host.Engine.GetFlow(r.Client)!;
        var sf = t.Replicas[0].Host.Engine.GetFlow(r.Server);
        Assert.Equal(ClientMoved, cf.LocalAddress);
        Assert.Equal(ReplicaMoved, cf.PeerAddress);
        if (sf is not null)
        {
            Assert.Equal(ClientMoved, sf.PeerAddress);
        }

        Assert.True(r.ClientNode.Host.Engine.Counters.RsynsRelayed >= 1);
        Assert.Equal(1, r.ClientNode.Host.Engine.Counters.MigrationsCompleted);
        Assert.Equal(1, t.Replicas[0].Host.Engine.Counters.MigrationsCompleted);
        Assert.Equal([ReplicaMoved], t.RouterTargets(Web));
        if (loss == 0)
        {
            // The router's rule moves one control-plane exchange after the address change; the relayed RSYN needs it.
            Assert.True(r.Gap < TimeSpan.FromMilliseconds(500), $"data stopped for {r.Gap.TotalMilliseconds} ms");
        }
    }

    /// <summary>
    /// Finding of the Promela model (docs/migration-model.md, "Both ends move: the relay in RsynSentReceived"): the
    /// replica moves, the client accepts its RSYN, and before the replica's final ACK reaches the client the replica moves
    /// again and the client moves too. The client's RSYN now goes to the replica's previous address (the one its RSYN came
    /// from), which is gone; the replica's RSYN goes to the client's old address, gone too. Only the relay can reconnect
    /// them, so the client must relay its RSYN in RsynSentReceived as well as in RsynSent.
    /// </summary>
    [Fact]
    public void The_relay_reaches_a_peer_that_moved_again_while_we_owe_it_an_rsyn_ack()
    {
        var t = Build(44, replicas: 1, conditions: LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(2) });
        var server = t.Replicas[0];
        var listener = Listen(server, Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        var clientIface = InterfaceOf(t.Client, ClientAddr);
        var c = t.Client.Do(() => t.Client.Host.Connect(Web));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(c), TimeSpan.FromSeconds(5)));
        var s = t.Net.AcceptOne(server.Host, listener);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));

        // The replica moves: its RSYN reaches the client, which answers (RsynReceived); the RSYN|ACK reaches the replica,
        // which switches, and its final ACK is lost (the LAN drops everything for those 2 ms).
        server.Do(() => server.Host.Engine.SetInterfaceAddress(t.ReplicaInterfaces[0], ReplicaMoved, server.Now));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.Engine.GetFlow(c)!.Migration == MigrationState.RsynReceived, TimeSpan.FromSeconds(1)));
        t.Lan.Partitioned = true;
        Assert.True(t.Net.RunUntil(() => server.Host.Engine.GetFlow(s) is { Migration: MigrationState.None } f && f.LocalAddress == ReplicaMoved, TimeSpan.FromSeconds(1)));
        Assert.Equal(MigrationState.RsynReceived, t.Client.Host.Engine.GetFlow(c)!.Migration);

        // Then the replica moves again and the client moves, both before either transmits: the client's RSYN goes to
        // 10.0.0.111 (where the replica's RSYN came from), the replica's to 10.0.0.1; neither address exists any more.
        var replicaAgain = LinkAddress.Parse("10.0.0.112");
        server.Host.Engine.SetInterfaceAddress(t.ReplicaInterfaces[0], replicaAgain, server.Now);
        t.Client.Host.Engine.SetInterfaceAddress(clientIface, ClientMoved, t.Client.Now);
        t.Lan.Partitioned = false;
        t.Client.Do(() => { });
        server.Do(() => { });

        var settled = t.Net.RunUntil(
            () => t.Client.Host.Engine.GetFlow(c) is { Migration: MigrationState.None } cf && cf.PeerAddress == replicaAgain
                && server.Host.Engine.GetFlow(s) is { Migration: MigrationState.None } sf && sf.PeerAddress == ClientMoved,
            TimeSpan.FromSeconds(10));
        var cfi = t.Client.Host.Engine.GetFlow(c);
        var sfi = server.Host.Engine.GetFlow(s);
        Assert.True(
            settled,
            $"client {cfi?.LocalAddress}->{cfi?.PeerAddress} {cfi?.State}/{cfi?.Migration}, replica {sfi?.LocalAddress}->{sfi?.PeerAddress} {sfi?.State}/{sfi?.Migration}; relayed {t.Client.Host.Engine.Counters.RsynsRelayed}");
        Assert.Equal(ClientMoved, cfi!.LocalAddress);
        Assert.Equal(replicaAgain, sfi!.LocalAddress);
        Assert.True(t.Client.Host.Engine.Counters.RsynsRelayed >= 1);
        t.Exchange(server, s, c, 64 * 1024);
    }

    [Fact]
    public void Without_the_relay_neither_end_finds_the_other()
    {
        var r = TransferWhileBothMove(43, relay: false, 0.0, TimeSpan.FromSeconds(30));
        var cf = r.ClientNode.Host.Engine.GetFlow(r.Client);
        var sf = r.Topology.Replicas[0].Host.Engine.GetFlow(r.Server);
        Assert.False(r.Completed, $"client {cf?.LocalAddress}->{cf?.PeerAddress} {cf?.State}/{cf?.Migration}, server {sf?.LocalAddress}->{sf?.PeerAddress} {sf?.State}/{sf?.Migration}; relayed {r.ClientNode.Host.Engine.Counters.RsynsRelayed}, migrations {r.ClientNode.Host.Engine.Counters.MigrationsCompleted}/{r.Topology.Replicas[0].Host.Engine.Counters.MigrationsCompleted}, gap {r.Gap}");
        Assert.Equal(0, r.ClientNode.Host.Engine.Counters.RsynsRelayed);
        Assert.Equal(0, r.ClientNode.Host.Engine.Counters.MigrationsCompleted);
    }
}
