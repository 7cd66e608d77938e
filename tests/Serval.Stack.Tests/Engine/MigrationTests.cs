using Serval.Simulation;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>RSYN migration (docs/protocol.md §10) in the simulator.</summary>
public sealed class MigrationTests
{
    private static readonly ServiceId Svc = ServiceId.FromName("mobile");

    private sealed class Setup
    {
        public required SimulatedNetwork Net { get; init; }

        public required SimLink Lan { get; init; }

        public required SimHost Client { get; init; }

        public required SimHost Server { get; init; }

        public required int[] ClientIfaces { get; init; }

        public required int[] ServerIfaces { get; init; }

        public required SocketHandle C { get; init; }

        public required SocketHandle S { get; init; }
    }

    private static Setup Build(ulong seed, double loss)
    {
        var net = new SimulatedNetwork(seed);
        var lan = net.AddLink("lan", LinkConditions.Perfect with { Loss = loss, Delay = TimeSpan.FromMilliseconds(5), BandwidthBitsPerSecond = 100_000_000, QueueBytes = 512 * 1024 });
        var client = net.AddHost("client");
        var server = net.AddHost("server");
        var c1 = client.Attach(lan, LinkAddress.Parse("10.0.0.1"));
        var c2 = client.Attach(lan, LinkAddress.Parse("10.0.0.3"));
        var s1 = server.Attach(lan, LinkAddress.Parse("10.0.0.2"));
        var s2 = server.Attach(lan, LinkAddress.Parse("10.0.0.4"));
        client.AddForward(ServicePrefix.Default, LinkAddress.Parse("10.0.0.2"), c1);
        var l = server.Listen(Svc);
        var c = client.Connect(Svc);
        Assert.True(net.RunUntil(() => client.IsConnected(c), TimeSpan.FromSeconds(60)));
        var s = net.AcceptOne(server, l);
        return new Setup { Net = net, Lan = lan, Client = client, Server = server, ClientIfaces = [c1, c2], ServerIfaces = [s1, s2], C = c, S = s };
    }

    /// <summary>Transfers <paramref name="size"/> bytes client→server and runs <paramref name="during"/> once when <paramref name="at"/> bytes have arrived.</summary>
    private static void TransferWith(Setup t, int size, int seed, Action<Setup> during, int at)
    {
        var data = SimApp.RandomBytes(size, seed);
        var sent = 0;
        var received = new MemoryStream();
        var buffer = new byte[65536];
        var fired = false;
        var done = false;
        var ok = t.Net.RunUntil(
            () =>
            {
                while (sent < data.Length)
                {
                    t.Client.Engine.Write(t.C, data.AsSpan(sent), t.Client.Now, out var n);
                    if (n == 0)
                    {
                        break;
                    }

                    sent += n;
                }

                if (sent == data.Length)
                {
                    t.Client.Engine.CompleteWrites(t.C, t.Client.Now);
                }

                t.Client.Pump();
                while (t.Server.Engine.Read(t.S, buffer, t.Server.Now, out var n, out var completed) == ServalError.None && n > 0)
                {
                    received.Write(buffer, 0, n);
                }

                t.Server.Engine.Read(t.S, buffer, t.Server.Now, out _, out done);
                t.Server.Pump();
                if (!fired && received.Length >= at)
                {
                    fired = true;
                    during(t);
                }

                return done;
            },
            TimeSpan.FromMinutes(20));
        Assert.True(ok, $"transfer incomplete: {received.Length} of {size}; client {t.Client.Engine.GetFlow(t.C)?.State}/{t.Client.Engine.GetFlow(t.C)?.Migration}, server {t.Server.Engine.GetFlow(t.S)?.State}/{t.Server.Engine.GetFlow(t.S)?.Migration}");
        Assert.True(fired);
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(received.ToArray()));
    }

    [Theory]
    [InlineData(0.0, 1)]
    [InlineData(0.02, 2)]
    [InlineData(0.10, 3)]
    public void Client_migrates_mid_transfer_and_every_byte_arrives(double loss, int seed)
    {
        var t = Build((ulong)seed, loss);
        var size = 20 * 1024 * 1024;
        var at = new Random(seed).Next(1, size - 1);
        TransferWith(t, size, seed, s =>
        {
            Assert.Equal(ServalError.None, s.Client.Do(e => e.Migrate(s.C, s.ClientIfaces[1], s.Client.Now)));
            s.Client.Engine.SetInterfaceUp(s.ClientIfaces[0], false, s.Client.Now); // the old path is gone
        }, at);
        Assert.Equal(LinkAddress.Parse("10.0.0.3"), t.Server.Engine.GetFlow(t.S)!.PeerAddress);
        Assert.Equal(LinkAddress.Parse("10.0.0.3"), t.Client.Engine.GetFlow(t.C)!.LocalAddress);
        Assert.Equal(1, t.Client.Engine.Counters.MigrationsCompleted);
    }

    [Fact]
    public void Server_migrates_mid_transfer()
    {
        var t = Build(4, 0.02);
        TransferWith(t, 20 * 1024 * 1024, 4, s =>
        {
            Assert.Equal(ServalError.None, s.Server.Do(e => e.Migrate(s.S, s.ServerIfaces[1], s.Server.Now)));
            s.Server.Engine.SetInterfaceUp(s.ServerIfaces[0], false, s.Server.Now);
        }, 7 * 1024 * 1024);
        Assert.Equal(LinkAddress.Parse("10.0.0.4"), t.Client.Engine.GetFlow(t.C)!.PeerAddress);
    }

    [Fact]
    public void Simultaneous_migration_ends_on_each_others_new_addresses()
    {
        var t = Build(5, 0.0);
        TransferWith(t, 5 * 1024 * 1024, 5, s =>
        {
            s.Client.Engine.Migrate(s.C, s.ClientIfaces[1], s.Client.Now);
            s.Server.Engine.Migrate(s.S, s.ServerIfaces[1], s.Server.Now);
            s.Client.Pump();
            s.Server.Pump();
        }, 1024 * 1024);
        var cf = t.Client.Engine.GetFlow(t.C)!;
        var sf = t.Server.Engine.GetFlow(t.S)!;
        Assert.Equal(LinkAddress.Parse("10.0.0.3"), cf.LocalAddress);
        Assert.Equal(LinkAddress.Parse("10.0.0.4"), cf.PeerAddress);
        Assert.Equal(LinkAddress.Parse("10.0.0.4"), sf.LocalAddress);
        Assert.Equal(LinkAddress.Parse("10.0.0.3"), sf.PeerAddress);
        Assert.Equal(MigrationState.None, cf.Migration);
        Assert.Equal(MigrationState.None, sf.Migration);
    }

    [Fact]
    public void Five_migrations_in_a_row()
    {
        var t = Build(6, 0.01);
        var moves = 0;
        void Move(Setup s)
        {
            var target = s.ClientIfaces[(moves + 1) % 2];
            Assert.Equal(ServalError.None, s.Client.Do(e => e.Migrate(s.C, target, s.Client.Now)));
            moves++;
            if (moves < 5)
            {
                s.Net.After(TimeSpan.FromMilliseconds(300), () => Move(s));
            }
        }

        TransferWith(t, 10 * 1024 * 1024, 6, Move, 1024 * 1024);
        Assert.Equal(5, moves);
        Assert.Equal(5, t.Client.Engine.Counters.MigrationsCompleted);
        Assert.Equal(LinkAddress.Parse("10.0.0.3"), t.Server.Engine.GetFlow(t.S)!.PeerAddress); // .3, .1, .3, .1, .3
    }

    [Fact]
    public void Migration_while_closing_completes_the_close()
    {
        var t = Build(7, 0.0);
        var data = SimApp.RandomBytes(100_000, 7);
        var got = SimApp.Transfer(t.Net, t.Client, t.C, t.Server, t.S, data, TimeSpan.FromSeconds(30));
        Assert.Equal(data.Length, got.Length);
        t.Client.Do(e => e.Close(t.C, t.Client.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(1)); // FIN exchange under way
        t.Client.Do(e => e.Migrate(t.C, t.ClientIfaces[1], t.Client.Now));
        t.Client.Engine.SetInterfaceUp(t.ClientIfaces[0], false, t.Client.Now);
        t.Server.Do(e => e.Close(t.S, t.Server.Now));
        Assert.True(t.Net.RunUntil(() => t.Client.Engine.FlowCount == 0 && t.Server.Engine.FlowCount == 0, TimeSpan.FromMinutes(5)));
        Assert.Equal(0, t.Client.Engine.Counters.MigrationsFailed);
    }

    [Fact]
    public void Interface_going_down_moves_the_flow_automatically()
    {
        var t = Build(8, 0.01);
        TransferWith(t, 5 * 1024 * 1024, 8, s => s.Client.Do(e => e.SetInterfaceUp(s.ClientIfaces[0], false, s.Client.Now)), 2 * 1024 * 1024);
        Assert.Equal(LinkAddress.Parse("10.0.0.3"), t.Server.Engine.GetFlow(t.S)!.PeerAddress);
        Assert.Equal(1, t.Client.Engine.Counters.MigrationsCompleted);
    }

    [Fact]
    public void Address_change_moves_the_flow_to_the_new_address()
    {
        var t = Build(9, 0.0);
        TransferWith(t, 2 * 1024 * 1024, 9, s => s.Client.Do(e => e.SetInterfaceAddress(s.ClientIfaces[0], LinkAddress.Parse("10.0.0.9"), s.Client.Now)), 512 * 1024);
        Assert.Equal(LinkAddress.Parse("10.0.0.9"), t.Server.Engine.GetFlow(t.S)!.PeerAddress);
    }

    [Fact]
    public void Spoofed_rsyn_ack_with_wrong_nonce_is_ignored_and_the_flow_is_undisturbed()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        // Our own migration: we send RSYN from a second interface.
        var second = h.Engine.AddInterface(new InterfaceConfig { Name = "wlan0", Address = LinkAddress.Parse("10.0.1.2"), Mtu = 1500 });
        h.Engine.SetInterfaceUp(second, true, h.Now);
        Assert.Equal(ServalError.None, h.Engine.Migrate(f.Socket, second, h.Now));
        h.Poll();
        var rsyn = h.Expect(p => p.Control is { } c && c.Has(SalControlFlags.Rsyn), "RSYN");
        var bad = PacketHarness.Control(SalControlFlags.Rsyn | SalControlFlags.Ack, f.TheirNext, rsyn.Control!.Value.Verno + 1, f.Theirs, f.Ours, new Nonce(99));
        h.Send(bad);
        Assert.Equal(MigrationState.RsynSent, h.Engine.GetFlow(f.Socket)!.Migration);
        Assert.Equal(1, h.Engine.Counters.BadNonce);
        h.Send(bad with { Control = bad.Control!.Value with { Nonce = PacketHarness.PeerNonce } });
        h.Expect(p => p.Control is { } c && c.IsPureAck, "final ACK");
        Assert.Equal(MigrationState.None, h.Engine.GetFlow(f.Socket)!.Migration);
        Assert.Equal(LinkAddress.Parse("10.0.1.2"), h.Engine.GetFlow(f.Socket)!.LocalAddress);
    }

    [Fact]
    public void ResendRsyns_sends_the_outstanding_rsyn_again_from_the_new_interface_without_counting_a_retransmission()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        var second = h.Engine.AddInterface(new InterfaceConfig { Name = "wlan0", Address = LinkAddress.Parse("10.0.1.2"), Mtu = 1500 });
        h.Engine.SetInterfaceUp(second, true, h.Now);
        Assert.Equal(0, h.Engine.ResendRsyns(h.Now)); // nothing outstanding yet
        Assert.Equal(ServalError.None, h.Engine.Migrate(f.Socket, second, h.Now));
        h.Poll();
        var rsyn = h.Expect(p => p.Control is { } c && c.Flags == SalControlFlags.Rsyn, "RSYN");
        h.Advance(TimeSpan.FromMilliseconds(5));
        h.ExpectNothing();

        // A route appeared (the runtime's RTM_NEWROUTE): the same RSYN leaves again at once, from the new address.
        Assert.Equal(1, h.Engine.ResendRsyns(h.Now));
        h.Poll();
        var again = h.Expect(p => p.Control is { } c && c.Flags == SalControlFlags.Rsyn, "the RSYN again");
        Assert.Equal(rsyn.Control!.Value.Verno, again.Control!.Value.Verno);
        Assert.Equal(LinkAddress.Parse("10.0.1.2"), h.LastSource);
        h.ExpectNothing();
        Assert.Equal(0, h.Engine.Counters.ControlRetransmissions);

        // Answered: nothing is outstanding any more.
        h.Send(PacketHarness.Control(SalControlFlags.Rsyn | SalControlFlags.Ack, f.TheirNext, rsyn.Control!.Value.Verno + 1, f.Theirs, f.Ours, PacketHarness.PeerNonce));
        h.Expect(p => p.Control is { } c && c.IsPureAck, "final ACK");
        Assert.Equal(0, h.Engine.ResendRsyns(h.Now));
        h.Poll();
        h.ExpectNothing();
    }

    [Fact]
    public void An_address_that_changes_again_while_the_migration_onto_it_is_pending_gets_the_rsyn_at_once()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        var b = LinkAddress.Parse("10.0.0.12");
        var c = LinkAddress.Parse("10.0.0.13");

        // The interface's address changes: the flow moves with an RSYN from the new address.
        h.Engine.SetInterfaceAddress(h.Interface, b, h.Now);
        h.Poll();
        var rsyn = h.Expect(p => p.Control is { } k && k.Flags == SalControlFlags.Rsyn, "RSYN from the first new address");
        Assert.Equal(b, h.LastSource);
        h.Advance(TimeSpan.FromMilliseconds(5));
        h.ExpectNothing();

        // It changes again before the peer answered (the RSYN|ACK would go to an address that is gone): the RSYN
        // leaves again at once from the newest address, not at the retransmission timer.
        h.Engine.SetInterfaceAddress(h.Interface, c, h.Now);
        h.Poll();
        var again = h.Expect(p => p.Control is { } k && k.Flags == SalControlFlags.Rsyn, "RSYN from the second new address, at once");
        Assert.Equal(c, h.LastSource);
        Assert.Equal(rsyn.Control!.Value.Verno, again.Control!.Value.Verno);
        h.ExpectNothing();

        // The peer answers there: the flow completes its one migration on the newest address.
        h.Send(PacketHarness.Control(SalControlFlags.Rsyn | SalControlFlags.Ack, f.TheirNext, rsyn.Control!.Value.Verno + 1, f.Theirs, f.Ours, PacketHarness.PeerNonce));
        h.Expect(p => p.Control is { } k && k.IsPureAck, "final ACK");
        Assert.Equal(c, h.LastSource);
        var flow = h.Engine.GetFlow(f.Socket)!;
        Assert.Equal(MigrationState.None, flow.Migration);
        Assert.Equal(c, flow.LocalAddress);
        Assert.Equal(1, h.Engine.Counters.MigrationsStarted);
        Assert.Equal(1, h.Engine.Counters.MigrationsCompleted);
        Assert.Equal(0, h.Engine.Counters.ControlRetransmissions);
    }
}
