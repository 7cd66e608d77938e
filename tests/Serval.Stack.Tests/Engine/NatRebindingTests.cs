using Serval.Simulation;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>NAT rebinding on UDP links: new source ports are validated before replies follow them.</summary>
public sealed class NatRebindingTests
{
    private static readonly ServiceId Svc = ServiceId.FromName("behind-nat");
    private static readonly LinkAddress Inside = LinkAddress.Parse("192.168.0.10:54325");
    private static readonly LinkAddress External = LinkAddress.Parse("10.0.0.1:40000");
    private static readonly LinkAddress ServerAddr = LinkAddress.Parse("10.0.0.2:54325");

    private static TimeSpan TransferTime(bool rebind, ulong seed, out SimHost server, out SocketHandle serverFlow, out SimNat nat)
    {
        var net = new SimulatedNetwork(seed);
        var link = net.AddLink("wan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(5), BandwidthBitsPerSecond = 100_000_000, QueueBytes = 512 * 1024 });
        nat = new SimNat(Inside, External);
        link.Nat = nat;
        var client = net.AddHost("client");
        server = net.AddHost("server");
        var ci = client.Attach(link, Inside);
        server.Attach(link, ServerAddr);
        client.AddForward(ServicePrefix.Default, ServerAddr, ci);
        var l = server.Listen(Svc);
        var c = client.Connect(Svc);
        Assert.True(net.RunUntil(() => client.IsConnected(c), TimeSpan.FromSeconds(5)));
        serverFlow = net.AcceptOne(server, l);
        if (rebind)
        {
            var n = nat;
            var port = 40001;
            void Next()
            {
                n.Rebind(port++);
                net.After(TimeSpan.FromMilliseconds(100), Next);
            }

            net.After(TimeSpan.FromMilliseconds(100), Next);
        }

        var data = SimApp.RandomBytes(5 * 1024 * 1024, (int)seed);
        var start = net.Now;
        var got = SimApp.Transfer(net, client, c, server, serverFlow, data, TimeSpan.FromMinutes(5));
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(got));
        // The server's acknowledgements must follow the client's new port each time, or the upload stalls.
        // (A host behind a NAT that only receives cannot be reached after its mapping changes until it sends
        // something: that needs keepalives or application traffic — see docs/nat-rebinding.md.)
        return net.Now - start;
    }

    [Fact]
    public void Transfer_survives_rebinding_every_100_ms_with_at_least_80_percent_goodput()
    {
        var baseline = TransferTime(false, 1, out _, out _, out _);
        var rebinding = TransferTime(true, 1, out var server, out var flow, out var nat);
        Assert.True(nat.Rebindings >= 5, $"only {nat.Rebindings} rebindings");
        Assert.True(server.Engine.Counters.PathsValidated >= nat.Rebindings - 1, $"{server.Engine.Counters.PathsValidated} validations for {nat.Rebindings} rebindings");
        var ratio = baseline / rebinding;
        Assert.True(ratio >= 0.80, $"goodput ratio {ratio:F2} (baseline {baseline}, with rebinding {rebinding})");
        Assert.Equal(nat.External, server.Engine.GetFlow(flow)!.PeerAddress);
    }

    [Fact]
    public void Spoofed_validation_reply_with_wrong_nonce_is_ignored_and_counted()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        var elsewhere = LinkAddress.Parse("10.0.0.66");
        h.Send(PacketHarness.Data(f.Theirs, f.Ours), "moved?"u8, from: elsewhere);
        var challenge = h.Expect(p => p.PathProbe is { IsResponse: false }, "PATH challenge to the new address");
        var value = challenge.PathProbe!.Value.Challenge;

        // Replies still go to the validated address until the challenge is answered.
        h.Engine.Write(f.Socket, "reply"u8, h.Now, out _);
        h.Poll();
        Assert.Equal(PacketHarness.Peer, h.Engine.GetFlow(f.Socket)!.PeerAddress);
        h.Drain();

        var bad = PacketHarness.Control(SalControlFlags.Ack, f.TheirNext, f.OurNext, f.Theirs, f.Ours, new Nonce(5)) with { PathProbe = new SalPathProbe(true, value) };
        h.Send(bad, from: elsewhere);
        Assert.Equal(PacketHarness.Peer, h.Engine.GetFlow(f.Socket)!.PeerAddress);
        Assert.Equal(1, h.Engine.Counters.PathValidationFailures);

        var wrongChallenge = bad with { Control = bad.Control!.Value with { Nonce = PacketHarness.PeerNonce }, PathProbe = new SalPathProbe(true, value ^ 1) };
        h.Send(wrongChallenge, from: elsewhere);
        Assert.Equal(PacketHarness.Peer, h.Engine.GetFlow(f.Socket)!.PeerAddress);
        Assert.Equal(2, h.Engine.Counters.PathValidationFailures);

        h.Send(wrongChallenge with { PathProbe = new SalPathProbe(true, value) }, from: elsewhere);
        Assert.Equal(elsewhere, h.Engine.GetFlow(f.Socket)!.PeerAddress);
        Assert.Equal(1, h.Engine.Counters.PathsValidated);
    }

    [Fact]
    public void A_challenge_is_answered_on_the_path_it_came_from()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Send(PacketHarness.Control(SalControlFlags.Ack, f.TheirNext, f.OurNext, f.Theirs, f.Ours) with { PathProbe = new SalPathProbe(false, 77) });
        var r = h.Expect(p => p.PathProbe is { IsResponse: true, Challenge: 77 }, "PATH response");
        Assert.Equal(f.OurNonce, r.Control!.Value.Nonce);
    }

    [Fact]
    public void A_challenge_never_reveals_the_flow_nonce_and_stray_packets_do_not_trigger_one()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        var stranger = LinkAddress.Parse("10.0.0.77");

        // A control packet with a foreign nonce (another host's SYN-ACK, a spoof) does not start a validation.
        h.Send(PacketHarness.Control(SalControlFlags.Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours, new Nonce(3)), from: stranger);
        h.ExpectNothing();

        h.Send(PacketHarness.Data(f.Theirs, f.Ours), "x"u8, from: stranger);
        var challenge = h.Expect(p => p.PathProbe is { IsResponse: false });
        Assert.Equal(default, challenge.Control!.Value.Nonce);
    }
}
