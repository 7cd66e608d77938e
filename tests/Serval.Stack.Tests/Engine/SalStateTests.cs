using Serval.Stack;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.Engine.PacketHarness;

namespace Serval.Stack.Tests.Engine;

/// <summary>Every row of the reference's SAL state table (docs/protocol.md §12), packet by packet, on connected datagram flows.</summary>
public sealed class SalStateTests
{
    private const SalControlFlags Syn = SalControlFlags.Syn;
    private const SalControlFlags Ack = SalControlFlags.Ack;
    private const SalControlFlags Fin = SalControlFlags.Fin;
    private const SalControlFlags Rst = SalControlFlags.Rst;

    private static bool Is(SalPacketRepr p, SalControlFlags flags) => p.Control is { } c && (c.Flags & ~SalControlFlags.Reserved) == flags;

    [Fact]
    public void Init_datagram_with_two_services_is_delivered_and_stream_sockets_ignore_it()
    {
        var h = new PacketHarness();
        h.Engine.BindDatagram(ServicePrefix.Exact(Service), h.Now, out var sock);
        h.Engine.Listen(ServicePrefix.Exact(ServiceId.FromName("s")), TransportProtocol.Stream, 4, h.Now, out _);
        var from = ServiceId.FromName("from");
        h.Send(Data(new FlowId(9), FlowId.None) with { DestinationService = Service, SourceService = from }, "hi"u8);
        var buf = new byte[10];
        Assert.Equal(ServalError.None, h.Engine.ReceiveFrom(sock, buf, out var n, out var src, out var addr));
        Assert.Equal(2, n);
        Assert.Equal(from, src);
        Assert.Equal(Peer, addr);

        // A datagram to the stream listener's service finds no datagram socket.
        var dropped = h.Engine.Counters.NoRoute;
        h.Send(Data(new FlowId(9), FlowId.None) with { DestinationService = ServiceId.FromName("s"), SourceService = from }, "hi"u8);
        Assert.Equal(dropped + 1, h.Engine.Counters.NoRoute);
        h.ExpectNothing();
    }

    [Fact]
    public void Init_connect_sends_syn_and_enters_request()
    {
        var h = new PacketHarness();
        h.Engine.Connect(Service, TransportProtocol.Datagram, h.Now, out var s);
        h.Poll();
        var syn = h.Expect(p => Is(p, Syn) && p.DestinationService == Service && p.DestinationFlow.IsNone, "SYN");
        Assert.Equal(0u, syn.Control!.Value.Ackno);
        Assert.Equal(SalState.Request, h.Engine.GetState(s));
    }

    [Fact]
    public void Init_listen_enters_listen_and_registers()
    {
        var h = new PacketHarness();
        Assert.Equal(ServalError.None, h.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Stream, 4, h.Now, out var l));
        h.Poll();
        Assert.Equal(SalState.Listen, h.Engine.GetState(l));
        Assert.Contains(h.Events, e => e.Kind == EngineEventKind.ServiceRegistered && e.Socket == l);
        Assert.Equal(ServalError.AddressInUse, h.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Stream, 4, h.Now, out _));
        Assert.Equal(ServalError.None, h.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Datagram, 4, h.Now, out _));
    }

    [Fact]
    public void Request_valid_synack_connects_and_sends_conn_ack()
    {
        var h = new PacketHarness();
        h.Engine.Connect(Service, TransportProtocol.Datagram, h.Now, out var s);
        h.Poll();
        var syn = h.Expect(p => Is(p, Syn));
        var v = syn.Control!.Value.Verno;
        h.Send(Control(Syn | Ack, 900, v + 1, new FlowId(5), syn.SourceFlow) with { ControlOnly = false, Udp = new UdpRepr() });
        var ack = h.Expect(p => Is(p, Ack) && p.DestinationService == Service, "CONN_ACK");
        Assert.Equal(v + 1, ack.Control!.Value.Verno);
        Assert.Equal(901u, ack.Control.Value.Ackno);
        Assert.Equal(new FlowId(5), ack.DestinationFlow);
        Assert.Equal(SalState.Connected, h.Engine.GetState(s));
        Assert.Contains(h.Events, e => e.Kind == EngineEventKind.Connected && e.Socket == s);
    }

    [Fact]
    public void Request_synack_acking_the_wrong_verno_is_ignored()
    {
        var h = new PacketHarness();
        h.Engine.Connect(Service, TransportProtocol.Datagram, h.Now, out var s);
        h.Poll();
        var syn = h.Expect(p => Is(p, Syn));
        h.Send(Control(Syn | Ack, 900, syn.Control!.Value.Verno + 7, new FlowId(5), syn.SourceFlow) with { ControlOnly = false, Udp = new UdpRepr() });
        h.ExpectNothing();
        Assert.Equal(SalState.Request, h.Engine.GetState(s));
    }

    [Fact]
    public void Request_gives_up_after_15_retransmissions_with_backoff()
    {
        var h = new PacketHarness();
        h.Engine.Connect(Service, TransportProtocol.Datagram, h.Now, out var s);
        h.Poll();
        h.Expect(p => Is(p, Syn));
        var gaps = new List<double>();
        var last = h.Now;
        for (var i = 0; i < 15; i++)
        {
            while (h.Pending == 0)
            {
                h.Advance(TimeSpan.FromMilliseconds(100));
            }

            h.Expect(p => Is(p, Syn), $"retransmission {i + 1}");
            gaps.Add((h.Now - last).TotalSeconds);
            last = h.Now;
        }

        Assert.InRange(gaps[0], 0.9, 1.2);
        Assert.InRange(gaps[1], 1.9, 2.2);
        Assert.InRange(gaps[^1], 59, 61); // capped at the 60 s maximum
        h.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(SalState.Closed, h.Engine.GetState(s));
        Assert.Equal(ServalError.TimedOut, h.Engine.GetError(s));
    }

    [Fact]
    public void Request_rst_with_our_nonce_refuses()
    {
        var h = new PacketHarness();
        h.Engine.Connect(Service, TransportProtocol.Datagram, h.Now, out var s);
        h.Poll();
        var syn = h.Expect(p => Is(p, Syn));
        h.Send(Control(Rst | Ack, 0, syn.Control!.Value.Verno + 1, new FlowId(5), syn.SourceFlow, syn.Control.Value.Nonce));

        // The SYN was resolved by the service table: it is resolved once more before the connect is refused.
        var again = h.Expect(p => Is(p, Syn), "the SYN, resolved again");
        Assert.Equal(syn.Control.Value.Nonce, again.Control!.Value.Nonce);
        Assert.Equal(SalState.Request, h.Engine.GetState(s));
        h.Send(Control(Rst | Ack, 0, syn.Control.Value.Verno + 1, new FlowId(5), syn.SourceFlow, syn.Control.Value.Nonce));
        Assert.Equal(ServalError.ConnectionRefused, h.Engine.GetError(s));
        h.ExpectNothing();
    }

    [Fact]
    public void Listen_syn_creates_request_and_answers_synack_directly()
    {
        var h = new PacketHarness();
        h.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Datagram, 4, h.Now, out _);
        h.Send(Syn(new FlowId(77), 5000));
        var sa = h.Expect(p => Is(p, Syn | Ack), "SYN-ACK");
        Assert.Equal(5001u, sa.Control!.Value.Ackno);
        Assert.Equal(new FlowId(77), sa.DestinationFlow);
        Assert.False(sa.SourceFlow.IsNone);
        Assert.Null(sa.SourceRoute);

        // A duplicate SYN gets the same SYN-ACK again, not a second request.
        h.Send(Syn(new FlowId(77), 5000));
        var again = h.Expect(p => Is(p, Syn | Ack));
        Assert.Equal(sa.SourceFlow, again.SourceFlow);
        Assert.Equal(1, h.Engine.FlowCount);
    }

    [Fact]
    public void Listen_non_syn_first_packet_gets_rst()
    {
        var h = new PacketHarness();
        h.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Datagram, 4, h.Now, out _);
        h.Send(Control(Fin, 10, 0, new FlowId(3), FlowId.None) with { DestinationService = Service });
        h.Expect(p => p.Control is { } c && c.Has(Rst) && p.DestinationFlow == new FlowId(3), "RST");
    }

    [Fact]
    public void Respond_valid_ack_connects_and_wakes_listener()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        Assert.Contains(h.Events, e => e.Kind == EngineEventKind.ConnectionPending);
        Assert.Equal(SalState.Connected, h.Engine.GetState(f.Socket));
    }

    [Fact]
    public void Respond_ack_with_wrong_verno_or_ackno_does_not_connect()
    {
        var h = new PacketHarness();
        h.Engine.Listen(ServicePrefix.Exact(Service), TransportProtocol.Datagram, 4, h.Now, out var l);
        h.Send(Syn(new FlowId(77), 5000));
        var sa = h.Expect(p => Is(p, Syn | Ack));
        h.Send(Control(Ack, 5003, sa.Control!.Value.Verno + 1, new FlowId(77), sa.SourceFlow) with { DestinationService = Service });
        h.Send(Control(Ack, 5001, sa.Control.Value.Verno + 9, new FlowId(77), sa.SourceFlow) with { DestinationService = Service });
        Assert.Equal(ServalError.WouldBlock, h.Engine.Accept(l, out _));
    }

    [Fact]
    public void Connected_fin_moves_to_close_wait_and_is_acked()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Send(Control(Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours));
        var ack = h.Expect(p => Is(p, Ack));
        Assert.Equal(f.TheirNext + 1, ack.Control!.Value.Ackno);
        Assert.Equal(SalState.CloseWait, h.Engine.GetState(f.Socket));
    }

    [Fact]
    public void Connected_close_of_datagram_flow_sends_fin_at_once()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Engine.Close(f.Socket, h.Now);
        h.Poll();
        var fin = h.Expect(p => Is(p, Fin), "FIN");
        Assert.Equal(f.OurNext, fin.Control!.Value.Verno);
    }

    [Fact]
    public void Close_wait_close_moves_to_last_ack_and_retransmitted_fin_is_reacked()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Send(Control(Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours));
        h.Expect(p => Is(p, Ack));
        h.Send(Control(Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours)); // retransmitted FIN
        h.Expect(p => Is(p, Ack), "re-ACK");
        h.Engine.Write(f.Socket, "x"u8, h.Now, out _);
        h.Engine.Close(f.Socket, h.Now);
        h.Poll();
        h.Expect(out var data, p => p.Control is null, "data still flows in CLOSE-WAIT");
        Assert.Equal("x"u8.ToArray(), data);
        h.Expect(p => Is(p, Fin));
        Assert.Equal(1, h.Engine.FlowCount);
        h.Send(Control(Ack, f.TheirNext + 1, f.OurNext + 1, f.Theirs, f.Ours));
        Assert.Equal(0, h.Engine.FlowCount); // LAST-ACK + valid ACK → closed and gone
    }

    private static (PacketHarness H, FlowFixture F) FinWait1()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Engine.Close(f.Socket, h.Now);
        h.Poll();
        h.Expect(p => Is(p, Fin));
        return (h, f);
    }

    private static SalState StateOf(PacketHarness h, FlowFixture f) =>
        h.Engine.GetFlows().Single(x => x.LocalFlow == f.Ours).State;

    [Fact]
    public void Fin_wait_1_ack_and_fin_together_enter_time_wait()
    {
        var (h, f) = FinWait1();
        h.Send(Control(Fin | Ack, f.TheirNext, f.OurNext + 1, f.Theirs, f.Ours));
        h.Expect(p => Is(p, Ack));
        Assert.Equal(SalState.TimeWait, StateOf(h, f));
    }

    [Fact]
    public void Fin_wait_1_fin_without_valid_ack_enters_closing_then_ack_enters_time_wait()
    {
        var (h, f) = FinWait1();
        h.Send(Control(Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours));
        h.Expect(p => Is(p, Ack));
        Assert.Equal(SalState.Closing, StateOf(h, f));
        h.Send(Control(Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours));
        h.Expect(p => Is(p, Ack), "re-ACK in CLOSING");
        h.Send(Control(Ack, f.TheirNext + 1, f.OurNext + 1, f.Theirs, f.Ours));
        Assert.Equal(SalState.TimeWait, StateOf(h, f));
    }

    [Fact]
    public void Fin_wait_1_ack_only_enters_fin_wait_2_which_times_out()
    {
        var (h, f) = FinWait1();
        h.Send(Control(Ack, f.TheirNext, f.OurNext + 1, f.Theirs, f.Ours));
        Assert.Equal(SalState.FinWait2, StateOf(h, f));
        h.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(0, h.Engine.FlowCount);
    }

    [Fact]
    public void Fin_wait_2_fin_is_acked_and_enters_time_wait_then_closes()
    {
        var (h, f) = FinWait1();
        h.Send(Control(Ack, f.TheirNext, f.OurNext + 1, f.Theirs, f.Ours));
        h.Send(Control(Fin, f.TheirNext, f.OurNext + 1, f.Theirs, f.Ours));
        h.Expect(p => Is(p, Ack));
        Assert.Equal(SalState.TimeWait, StateOf(h, f));

        // TIME-WAIT: a retransmitted FIN is re-ACKed; everything else is dropped; the timer closes.
        h.Send(Control(Fin, f.TheirNext, f.OurNext + 1, f.Theirs, f.Ours));
        h.Expect(p => Is(p, Ack), "re-ACK in TIME-WAIT");
        h.Send(Data(f.Theirs, f.Ours), "late"u8);
        h.ExpectNothing();
        h.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(0, h.Engine.FlowCount);
    }

    [Fact]
    public void Last_ack_fin_is_reacked()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Send(Control(Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours));
        h.Expect(p => Is(p, Ack));
        h.Engine.Close(f.Socket, h.Now);
        h.Poll();
        h.Expect(p => Is(p, Fin));
        h.Send(Control(Fin, f.TheirNext, f.OurNext, f.Theirs, f.Ours));
        h.Expect(p => Is(p, Ack), "re-ACK in LAST-ACK");
        Assert.Equal(SalState.LastAck, StateOf(h, f));
    }

    [Fact]
    public void Closed_flow_answers_any_packet_with_rst()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        h.Engine.Abort(f.Socket, h.Now);
        h.Poll();
        h.Expect(p => p.Control is { } c && c.Has(Rst), "active RST");
        h.Send(Data(f.Theirs, f.Ours), "x"u8);
        h.Expect(p => p.Control is { } c && c.Has(Rst) && p.DestinationFlow == f.Theirs, "RST for closed flow");
        h.Send(Control(Rst, 1, 1, f.Theirs, f.Ours));
        h.ExpectNothing(); // never an RST for an RST
    }

    [Fact]
    public void Close_in_init_request_listen_tears_down_at_once()
    {
        var h = new PacketHarness();
        h.Engine.Connect(Service, TransportProtocol.Datagram, h.Now, out var s);
        h.Engine.Listen(ServicePrefix.Exact(ServiceId.FromName("l")), TransportProtocol.Stream, 4, h.Now, out var l);
        h.Engine.BindDatagram(null, h.Now, out var d);
        h.Poll();
        h.Drain();
        Assert.Equal(ServalError.None, h.Engine.Close(s, h.Now));
        Assert.Equal(ServalError.None, h.Engine.Close(l, h.Now));
        Assert.Equal(ServalError.None, h.Engine.Close(d, h.Now));
        h.Poll();
        h.ExpectNothing();
        Assert.Equal(0, h.Engine.FlowCount);
        Assert.Contains(h.Events, e => e.Kind == EngineEventKind.ServiceUnregistered && e.Socket == l);
        Assert.Equal(ServalError.BadHandle, h.Engine.Close(s, h.Now));
        h.Advance(TimeSpan.FromSeconds(5));
        h.ExpectNothing(); // no SYN retransmission after the close
    }
}
