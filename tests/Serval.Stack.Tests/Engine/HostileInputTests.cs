using Serval.Stack;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.Engine.PacketHarness;

namespace Serval.Stack.Tests.Engine;

/// <summary>Nonce rules (docs/protocol.md §5–6, 10) and malformed or hostile input.</summary>
public sealed class HostileInputTests
{
    private static readonly Nonce Wrong = new(0xBAD0_BAD0_BAD0_BAD0);

    private static bool Is(SalPacketRepr p, SalControlFlags flags) => p.Control is { } c && (c.Flags & ~SalControlFlags.Reserved) == flags;

    [Fact]
    public void Handshake_ack_with_wrong_nonce_is_ignored_and_counted()
    {
        var h = new PacketHarness();
        h.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Datagram, 4, h.Now, out var l);
        h.Send(Syn(new FlowId(77), 5000));
        var sa = h.Expect(p => Is(p, SalControlFlags.Syn | SalControlFlags.Ack));
        h.Send(Control(SalControlFlags.Ack, 5001, sa.Control!.Value.Verno + 1, new FlowId(77), sa.SourceFlow, Wrong) with { DestinationService = Service });
        Assert.Equal(ServalError.WouldBlock, h.Engine.Accept(l, out _));
        Assert.Equal(1, h.Engine.Counters.BadNonce);
    }

    [Fact]
    public void Fin_with_wrong_nonce_is_ignored_and_the_flow_is_undisturbed()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Send(Control(SalControlFlags.Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours, Wrong));
        h.ExpectNothing();
        Assert.Equal(SalState.Connected, h.Engine.GetState(f.Socket));
        Assert.Equal(1, h.Engine.Counters.BadNonce);
    }

    [Fact]
    public void Rst_with_wrong_nonce_is_ignored_but_with_either_known_nonce_resets()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Send(Control(SalControlFlags.Rst, f.TheirNext, f.OurNext, f.Theirs, f.Ours, Wrong));
        Assert.Equal(SalState.Connected, h.Engine.GetState(f.Socket));
        Assert.Equal(1, h.Engine.Counters.ResetsIgnored);

        // The peer's own nonce: an active reset.
        h.Send(Control(SalControlFlags.Rst, f.TheirNext, f.OurNext, f.Theirs, f.Ours, PeerNonce));
        Assert.Equal(ServalError.ConnectionReset, h.Engine.GetError(f.Socket));

        // Our nonce: a reply to one of our packets.
        var h2 = new PacketHarness(seed: 9);
        var f2 = h2.EstablishedFlow();
        h2.Send(Control(SalControlFlags.Rst, 0, 0, f2.Theirs, f2.Ours, f2.OurNonce));
        Assert.Equal(ServalError.ConnectionReset, h2.Engine.GetError(f2.Socket));
    }

    [Fact]
    public void Rsyn_with_wrong_nonce_is_ignored()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Send(Control(SalControlFlags.Rsyn, f.TheirNext, f.OurNext, f.Theirs, f.Ours, Wrong), from: LinkAddress.Parse("10.0.0.9"));
        h.ExpectNothing();
        Assert.Equal(MigrationState.None, h.Engine.GetFlow(f.Socket)!.Migration);
        Assert.Equal(Peer, h.Engine.GetFlow(f.Socket)!.PeerAddress);
    }

    [Fact]
    public void Rsyn_with_right_nonce_is_answered_from_the_new_address()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Send(Control(SalControlFlags.Rsyn, f.TheirNext, f.OurNext, f.Theirs, f.Ours), from: LinkAddress.Parse("10.0.0.9"));
        var ra = h.Expect(p => Is(p, SalControlFlags.Rsyn | SalControlFlags.Ack), "RSYN|ACK");
        Assert.Equal(f.TheirNext + 1, ra.Control!.Value.Ackno);
        h.Send(Control(SalControlFlags.Ack, f.TheirNext + 1, f.OurNext, f.Theirs, f.Ours), from: LinkAddress.Parse("10.0.0.9"));
        Assert.Equal(LinkAddress.Parse("10.0.0.9"), h.Engine.GetFlow(f.Socket)!.PeerAddress);
    }

    [Fact]
    public void Bad_sal_checksum_is_dropped_and_counted()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        var buf = new byte[100];
        var n = Control(SalControlFlags.Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours).Emit(buf, [], new TransportPseudoHeader(Peer, Us));
        buf[11] ^= 0x55;
        h.SendRaw(buf[..n]);
        h.ExpectNothing();
        Assert.Equal(1, h.Engine.Counters.Malformed);
        Assert.Equal(SalState.Connected, h.Engine.GetState(f.Socket));
    }

    [Fact]
    public void Bad_transport_checksum_is_dropped_and_counted()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        var buf = new byte[100];
        var n = Data(f.Theirs, f.Ours).Emit(buf, "payload"u8, new TransportPseudoHeader(Peer, Us));
        buf[n - 1] ^= 1;
        h.SendRaw(buf[..n]);
        Assert.Equal(1, h.Engine.Counters.BadTransportChecksum);
        Assert.Equal(0, h.Engine.Available(f.Socket));
    }

    [Fact]
    public void Unknown_flow_gets_rst_with_its_own_nonce_and_fixed_ackno()
    {
        var h = new PacketHarness();
        h.Send(Control(SalControlFlags.Fin, 41, 0, new FlowId(5), new FlowId(12345)));
        var rst = h.Expect(p => p.Control is { } c && c.Has(SalControlFlags.Rst), "RST");
        Assert.Equal(42u, rst.Control!.Value.Ackno); // verno + 1 for the FIN (reference bug 8 fixed)
        Assert.Equal(PeerNonce, rst.Control.Value.Nonce);
        Assert.Equal(new FlowId(5), rst.DestinationFlow);
        Assert.Equal(new FlowId(12345), rst.SourceFlow);
        Assert.Equal(1, h.Engine.Counters.UnknownFlow);
    }

    [Fact]
    public void Old_verno_is_answered_with_a_pure_ack_and_dropped()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Send(Control(SalControlFlags.Fin, f.TheirNext - 3, f.OurNext, f.Theirs, f.Ours));
        var ack = h.Expect(p => Is(p, SalControlFlags.Ack), "pure ACK");
        Assert.Equal(f.TheirNext, ack.Control!.Value.Ackno);
        Assert.Equal(SalState.Connected, h.Engine.GetState(f.Socket));
        Assert.Equal(1, h.Engine.Counters.OldVerno);
    }

    [Fact]
    public void Syn_flood_beyond_the_pending_bound_keeps_memory_bounded_and_service_recovers()
    {
        var options = EngineOptions.Default with { MaxPendingRequests = 256 };
        var h = new PacketHarness(options);
        h.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Datagram, 64, h.Now, out var l);
        for (var i = 0; i < 10_000; i++)
        {
            h.Send(Syn(new FlowId((uint)(100 + i)), (uint)i) with { Control = new SalControl(SalControlFlags.Syn, (uint)i, 0, new Nonce((ulong)i)) });
            h.Drain();
        }

        // The table holds 256 requests; the rest are answered statelessly (SYN cookies), keeping no state.
        Assert.Equal(256, h.Engine.FlowCount);
        Assert.Equal(0, h.Engine.Counters.SynDropped);
        Assert.Equal(1000, h.Engine.Counters.SynCookiesSent); // the flood's one source gets its burst, no more
        Assert.Equal(10_000 - 256 - 1000, h.Engine.Counters.SynCookiesSuppressed);

        // The flood's requests expire (30 s) and a legitimate client is served again.
        h.Advance(TimeSpan.FromSeconds(31));
        h.Drain();
        Assert.Equal(0, h.Engine.FlowCount);
        h.Send(Syn(new FlowId(7), 1));
        var sa = h.Expect(p => Is(p, SalControlFlags.Syn | SalControlFlags.Ack));
        h.Send(Control(SalControlFlags.Ack, 2, sa.Control!.Value.Verno + 1, new FlowId(7), sa.SourceFlow) with { DestinationService = Service, ControlOnly = false, Udp = new UdpRepr() });
        Assert.Equal(ServalError.None, h.Engine.Accept(l, out _));
    }

    [Fact]
    public void Syn_ack_is_retransmitted_on_its_own_timer_up_to_five_times()
    {
        var h = new PacketHarness();
        h.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Datagram, 4, h.Now, out _);
        h.Send(Syn(new FlowId(77), 5000));
        h.Expect(p => Is(p, SalControlFlags.Syn | SalControlFlags.Ack));
        var count = 0;
        for (var t = 0; t < 40; t++)
        {
            h.Advance(TimeSpan.FromSeconds(1));
            while (h.Pending > 0)
            {
                h.Expect(p => Is(p, SalControlFlags.Syn | SalControlFlags.Ack));
                count++;
            }
        }

        Assert.Equal(5, count);
        Assert.Equal(0, h.Engine.FlowCount); // expired after 30 s
    }

    [Fact]
    public void Random_garbage_never_breaks_the_engine()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        var rng = new Random(3);
        for (var i = 0; i < 20_000; i++)
        {
            var b = new byte[rng.Next(0, 120)];
            rng.NextBytes(b);
            h.SendRaw(b);
            h.Drain();
        }

        Assert.Equal(SalState.Connected, h.Engine.GetState(f.Socket));
        Assert.True(h.Engine.Counters.Malformed > 19_000);
    }
}
