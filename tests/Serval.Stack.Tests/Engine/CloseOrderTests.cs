using Serval.Simulation;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// The order of a stream connection's close (docs/protocol.md §13, docs/engine.md "Closing"): the SAL FIN follows the
/// acknowledgement of our transport FIN — after <c>CompleteWrites</c> as after <c>Close</c> — without waiting for the
/// application to release the flow, as the reference does; against a peer that behaves like the reference (it reports
/// end of stream only on a SAL FIN), in both orders, compared step by step with the reference's own close in
/// TestData/tcp_basic.pcap; and half-close between two of our engines.
/// </summary>
public sealed class CloseOrderTests
{
    private const SalControlFlags Fin = SalControlFlags.Fin;
    private const SalControlFlags Ack = SalControlFlags.Ack;

    private static bool Is(SalPacketRepr p, SalControlFlags flags) => p.ControlOnly && p.Control is { } c && c.Flags == flags;

    private static SalState StateOf(PacketHarness h, FlowId ours) => h.Engine.GetFlows().Single(f => f.LocalFlow == ours).State;

    private static byte[] ReadAll(PacketHarness h, SocketHandle socket, out bool endOfStream)
    {
        var got = new List<byte>();
        var buffer = new byte[65536];
        endOfStream = false;
        while (h.Engine.Read(socket, buffer, h.Now, out var n, out _) == ServalError.None && n > 0)
        {
            got.AddRange(buffer.AsSpan(0, n).ToArray());
        }

        Assert.Equal(ServalError.None, h.Engine.Read(socket, buffer, h.Now, out _, out endOfStream));
        return [.. got];
    }

    /// <summary>
    /// The reference's close in tcp_basic.pcap (frames 46–55), the sequence both orders below must reproduce: the server
    /// B closes first; each side's SAL FIN follows the acknowledgement of its transport FIN, carries FIN alone, verno =
    /// its ISS + 1 and ackno = what it expects next; the ACKs advance by one past the FIN.
    /// </summary>
    [Fact]
    public void The_reference_closes_in_this_order()
    {
        string[] expected =
        [
            "first TCP Fin, Ack seq+0 ack+0",    // 46: B's last data with its transport FIN
            "second TCP Ack seq+0 ack+1",        // 49: A acknowledges it
            "first SAL Fin v+1 a+1",             // 50: B's SAL FIN at once
            "second SAL Ack v+1 a+2",            // 51: A acknowledges it (and reports end of stream)
            "second TCP Fin, Ack seq+0 ack+1",   // 52: A's application closed: its transport FIN
            "first TCP Ack seq+1 ack+1",         // 53: B acknowledges it
            "second SAL Fin v+1 a+2",            // 54: A's SAL FIN at once
            "first SAL Ack v+2 a+2",             // 55: B acknowledges it
        ];
        Assert.Equal(expected, CloseTrace.OfReference());
    }

    /// <summary>
    /// Our server writes 30000 bytes (the capture's file) and completes its writes — or closes; the client is the
    /// reference-like peer. The server sends its SAL FIN the moment the client acknowledges its transport FIN, and the
    /// client, which reports end of stream only on that SAL FIN, then closes: no deadlock when the server application
    /// waits for the client before it disposes.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Our_server_finishing_first_sends_its_sal_fin_at_the_transport_fin_ack_and_closes_as_the_reference(bool serverCloses)
    {
        var h = new PacketHarness(seed: 21);
        h.Engine.Listen(ServicePrefix.Exact(PacketHarness.Service), TransportProtocol.Stream, 4, h.Now, out var listener);
        var client = new ReferenceLikePeer(h, isClient: true);
        var socket = client.Connect(listener);
        var file = SimApp.RandomBytes(30000, 3);
        Assert.Equal(ServalError.None, h.Engine.Write(socket, file, h.Now, out var written));
        Assert.Equal(file.Length, written);
        Assert.Equal(ServalError.None, serverCloses ? h.Engine.Close(socket, h.Now) : h.Engine.CompleteWrites(socket, h.Now));
        h.Poll();

        client.ReceiveUntilTransportFin(TimeSpan.FromSeconds(5));
        Assert.Equal(file, client.Received.ToArray());

        // The client acknowledges our transport FIN (frame 49); our SAL FIN follows at once (frame 50), in the same
        // instant of virtual time: well within one round trip, and whether or not our application closed.
        client.Send(client.Tcp(TcpFlags.Ack));
        var salFin = client.Expect(p => Is(p, Fin), "our SAL FIN, right after our transport FIN was acknowledged");
        Assert.Equal(client.OurSalIss + 1, salFin.Control!.Value.Verno);
        Assert.Equal(client.SalIss + 1, salFin.Control.Value.Ackno);
        h.ExpectNothing();
        Assert.Equal(SalState.FinWait1, StateOf(h, client.OurFlow));

        // The reference client acknowledges our SAL FIN (frame 51) and only now reports end of stream to its
        // application, which closes: its transport FIN (frame 52) …
        client.SalRcvNxt++;
        client.Send(client.Control(Ack));
        h.ExpectNothing();
        Assert.Equal(SalState.FinWait2, StateOf(h, client.OurFlow));
        client.Send(client.Tcp(TcpFlags.Fin | TcpFlags.Ack));
        client.TcpNxt++;
        var tcpAck = client.Expect(p => p.Control is null && p.Tcp.Flags == TcpFlags.Ack, "our ACK of the client's transport FIN");
        Assert.Equal(client.TcpNxt, tcpAck.Tcp.AckNumber);
        Assert.Equal(client.TcpRcvNxt, tcpAck.Tcp.SequenceNumber);

        // … and, that acknowledged, its SAL FIN (frame 54), which we acknowledge (frame 55) and enter TIME-WAIT.
        client.Send(client.Control(Fin));
        client.SalNxt++;
        var salAck = client.Expect(p => Is(p, Ack), "our ACK of the client's SAL FIN");
        Assert.Equal(client.OurSalIss + 2, salAck.Control!.Value.Verno);
        Assert.Equal(client.SalNxt, salAck.Control.Value.Ackno);
        h.ExpectNothing();
        Assert.Equal(CloseTrace.OfReference(), CloseTrace.Of(client.Trace));

        if (!serverCloses)
        {
            // Our application saw the client's end of stream, and the flow is in TIME-WAIT while it still holds it.
            Assert.Equal(SalState.TimeWait, h.Engine.GetState(socket));
            Assert.Empty(ReadAll(h, socket, out var end));
            Assert.True(end);
            Assert.Equal(ServalError.None, h.Engine.Close(socket, h.Now));
            h.Poll();
            h.ExpectNothing(); // no second FIN, no reset
        }

        Assert.Equal(1, h.Engine.CompactTimeWaitCount);
        Assert.Equal(SalState.TimeWait, h.Engine.GetFlows().Single().State);

        // The compact record still acknowledges a retransmitted SAL FIN, and expires.
        client.Send(client.Control(Fin) with { Control = new SalControl(Fin, client.SalNxt - 1, client.SalRcvNxt, PacketHarness.PeerNonce) });
        h.Expect(p => Is(p, Ack) && p.Control!.Value.Ackno == client.SalNxt, "TIME-WAIT re-ACK");
        h.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(0, h.Engine.FlowCount);
        Assert.Equal(0, h.Engine.Counters.ResetsSent);
    }

    /// <summary>
    /// Our client reads 30000 bytes from the reference-like server, which closes first: transport FIN, then — once we
    /// acknowledged it — its SAL FIN. Our reader sees end of stream at the transport FIN; our application then closes
    /// (or completes its writes), and the rest of the exchange is the capture's.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_reference_server_finishing_first_is_read_to_the_end_and_we_close_as_the_reference(bool completeWritesOnly)
    {
        var h = new PacketHarness(seed: 22);
        Assert.Equal(ServalError.None, h.Engine.Connect(PacketHarness.Service, TransportProtocol.Stream, h.Now, out var socket));
        h.Poll();
        var server = new ReferenceLikePeer(h, isClient: false);
        server.Answer();

        var file = SimApp.RandomBytes(30000, 4);
        server.SendDataAndFin(file);
        Assert.Equal(server.TcpNxt, server.TakeAcks()); // our ACKs cover the data and the FIN (frame 49); no SAL packet
        Assert.Equal(SalState.Connected, h.Engine.GetState(socket));

        // End of stream for our reader comes with the transport FIN: every byte before it arrived in order.
        Assert.Equal(file, ReadAll(h, socket, out var end));
        Assert.True(end, "end of stream at the transport FIN");

        // The reference sends its SAL FIN once its transport FIN is acknowledged (frame 50); we acknowledge it (51).
        server.Send(server.Control(Fin));
        server.SalNxt++;
        var salAck = server.Expect(p => Is(p, Ack), "our ACK of the server's SAL FIN");
        Assert.Equal(server.OurSalIss + 1, salAck.Control!.Value.Verno);
        Assert.Equal(server.SalNxt, salAck.Control.Value.Ackno);
        h.ExpectNothing();
        Assert.Equal(SalState.CloseWait, h.Engine.GetState(socket));

        // Our application closes: our transport FIN (frame 52) …
        Assert.Equal(ServalError.None, completeWritesOnly ? h.Engine.CompleteWrites(socket, h.Now) : h.Engine.Close(socket, h.Now));
        h.Poll();
        var tcpFin = server.Expect(out var payload, p => p.Control is null && p.Tcp.Flags == (TcpFlags.Fin | TcpFlags.Ack), "our transport FIN");
        Assert.Empty(payload);
        Assert.Equal(server.OurTcpIss + 1, tcpFin.Tcp.SequenceNumber);
        Assert.Equal(server.TcpNxt, tcpFin.Tcp.AckNumber);
        h.ExpectNothing();

        // … acknowledged (frame 53), then our SAL FIN at once (frame 54) and the server's ACK of it (frame 55).
        server.TcpRcvNxt++;
        server.Send(server.Tcp(TcpFlags.Ack));
        var salFin = server.Expect(p => Is(p, Fin), "our SAL FIN, right after our transport FIN was acknowledged");
        Assert.Equal(server.OurSalIss + 1, salFin.Control!.Value.Verno);
        Assert.Equal(server.SalNxt, salFin.Control.Value.Ackno);
        Assert.Equal(SalState.LastAck, StateOf(h, server.OurFlow));
        server.SalRcvNxt++;
        server.Send(server.Control(Ack));
        h.ExpectNothing();
        Assert.Equal(CloseTrace.OfReference(), CloseTrace.Of(server.Trace));

        if (completeWritesOnly)
        {
            // The exchange is over while our application still holds the connection: it reads end of stream, then closes.
            Assert.Equal(SalState.Closed, h.Engine.GetState(socket));
            Assert.Empty(ReadAll(h, socket, out end));
            Assert.True(end);
            Assert.Equal(ServalError.None, h.Engine.Close(socket, h.Now));
            h.Poll();
            h.ExpectNothing();
        }

        Assert.Equal(0, h.Engine.FlowCount);
        Assert.Equal(0, h.Engine.Counters.ResetsSent);
    }

    /// <summary>
    /// The regression: after <c>CompleteWrites</c> the SAL FIN goes out as soon as the transport FIN is acknowledged,
    /// while the application still holds the connection (before, it waited for the close). The flow then still takes
    /// data and acknowledges it, in FIN-WAIT-1 and FIN-WAIT-2, for as long as the peer sends — FIN-WAIT-2's timer
    /// starts only when the application closes, and that close sends nothing more.
    /// </summary>
    [Fact]
    public void The_sal_fin_goes_out_before_the_application_closes_and_the_flow_still_receives()
    {
        var h = new PacketHarness(seed: 23);
        h.Engine.Listen(ServicePrefix.Exact(PacketHarness.Service), TransportProtocol.Stream, 4, h.Now, out var listener);
        var peer = new ReferenceLikePeer(h, isClient: true);
        var socket = peer.Connect(listener);
        h.Engine.Write(socket, "request"u8, h.Now, out _);
        h.Engine.CompleteWrites(socket, h.Now);
        h.Poll();
        peer.ReceiveUntilTransportFin(TimeSpan.FromSeconds(5));
        peer.Send(peer.Tcp(TcpFlags.Ack));
        peer.Expect(p => Is(p, Fin), "our SAL FIN before any close");
        Assert.Equal(SalState.FinWait1, h.Engine.GetState(socket));
        Assert.Equal(ServalError.InvalidState, h.Engine.Write(socket, "more"u8, h.Now, out _));

        // Data in FIN-WAIT-1 (our SAL FIN not yet acknowledged) is taken, acknowledged and read.
        peer.Send(peer.Tcp(TcpFlags.Psh | TcpFlags.Ack), "first"u8);
        peer.TcpNxt += 5;
        h.Advance(TimeSpan.FromMilliseconds(50)); // the delayed ACK
        Assert.Equal(peer.TcpNxt, peer.TakeAcks());
        Assert.Equal("first"u8.ToArray(), ReadAll(h, socket, out var end));
        Assert.False(end);

        // Our SAL FIN acknowledged: FIN-WAIT-2, and still data flows, long past FinWait2Timeout.
        peer.SalRcvNxt++;
        peer.Send(peer.Control(Ack));
        Assert.Equal(SalState.FinWait2, h.Engine.GetState(socket));
        h.Advance(EngineOptions.Default.FinWait2Timeout * 2);
        h.Drain();
        Assert.Equal(SalState.FinWait2, h.Engine.GetState(socket));
        peer.Send(peer.Tcp(TcpFlags.Psh | TcpFlags.Ack), "second"u8);
        peer.TcpNxt += 6;
        h.Advance(TimeSpan.FromMilliseconds(50));
        Assert.Equal(peer.TcpNxt, peer.TakeAcks());
        Assert.Equal("second"u8.ToArray(), ReadAll(h, socket, out end));
        Assert.False(end);

        // The application closes with nothing unread: no second SAL FIN, no transport segment, no reset; the flow now
        // waits FinWait2Timeout for the peer's FIN and then ends.
        Assert.Equal(ServalError.None, h.Engine.Close(socket, h.Now));
        h.Poll();
        h.ExpectNothing();
        Assert.Equal(SalState.FinWait2, StateOf(h, peer.OurFlow));
        h.Advance(EngineOptions.Default.FinWait2Timeout + TimeSpan.FromSeconds(1));
        Assert.Equal(0, h.Engine.FlowCount);
        Assert.Equal(0, h.Engine.Counters.ResetsSent);
    }

    /// <summary>A close after our SAL FIN with received data left unread resets the flow, as a close in CONNECTED does.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Closing_a_half_closed_flow_with_unread_data_resets_it(bool salFinAcked)
    {
        var h = new PacketHarness(seed: 24);
        h.Engine.Listen(ServicePrefix.Exact(PacketHarness.Service), TransportProtocol.Stream, 4, h.Now, out var listener);
        var peer = new ReferenceLikePeer(h, isClient: true);
        var socket = peer.Connect(listener);
        h.Engine.CompleteWrites(socket, h.Now);
        h.Poll();
        peer.ReceiveUntilTransportFin(TimeSpan.FromSeconds(5));
        peer.Send(peer.Tcp(TcpFlags.Ack));
        var salFin = peer.Expect(p => Is(p, Fin), "our SAL FIN");
        if (salFinAcked)
        {
            peer.SalRcvNxt++;
            peer.Send(peer.Control(Ack));
        }

        Assert.Equal(salFinAcked ? SalState.FinWait2 : SalState.FinWait1, h.Engine.GetState(socket));
        peer.Send(peer.Tcp(TcpFlags.Psh | TcpFlags.Ack), "unread"u8);
        h.Drain();
        Assert.Equal(6, h.Engine.Available(socket));

        Assert.Equal(ServalError.None, h.Engine.Close(socket, h.Now));
        h.Poll();
        var rst = h.Expect(p => p.ControlOnly && p.Control is { } c && c.Has(SalControlFlags.Rst), "RST");
        Assert.Equal(salFin.Control!.Value.Nonce, rst.Control!.Value.Nonce);
        h.ExpectNothing();
        Assert.Equal(0, h.Engine.FlowCount);
    }

    /// <summary>
    /// Two of our engines, 10 ms apart: A sends 1 MiB and completes its writes; B reads it to the end, keeps sending
    /// for a second and a half — A's SAL FIN is out and acknowledged long before — and then closes; A reads everything,
    /// then closes. Every byte arrives both ways, A's SAL FIN left within one round trip of B's acknowledgement of A's
    /// transport FIN, and both ends finish (A through TIME-WAIT) with nothing left behind and no reset.
    /// </summary>
    [Fact]
    public void Half_close_between_our_engines_delivers_every_byte_both_ways_and_leaves_nothing_behind()
    {
        var oneWay = TimeSpan.FromMilliseconds(10);
        var net = new SimulatedNetwork(31);
        var link = net.AddLink("lan", LinkConditions.Perfect with { Delay = oneWay, BandwidthBitsPerSecond = 100_000_000, QueueBytes = 1 << 20 });
        var a = net.AddHost("A");
        var b = net.AddHost("B");
        var ai = a.Attach(link, LinkAddress.Parse("10.0.0.1"));
        b.Attach(link, LinkAddress.Parse("10.0.0.2"));
        a.AddForward(ServicePrefix.Default, LinkAddress.Parse("10.0.0.2"), ai);
        var service = ServiceId.FromName("half-close");
        var listener = b.Listen(service);
        var ca = a.Connect(service);
        Assert.True(net.RunUntil(() => a.IsConnected(ca), TimeSpan.FromSeconds(5)));
        var cb = net.AcceptOne(b, listener);

        // When A's transport FIN is acknowledged by B, and when A's SAL FIN leaves A.
        TimeSpan? finAckedAt = null, salFinAt = null;
        uint? aFinSeq = null;
        link.Observer = (time, sender, _, _, bytes) =>
        {
            if (!SalPacketRepr.TryParse(bytes, out var p, out _, out var len, out _))
            {
                return;
            }

            if (sender == a && !p.ControlOnly && p.Tcp.Has(TcpFlags.Fin))
            {
                aFinSeq ??= unchecked(p.Tcp.SequenceNumber + (uint)len + 1);
            }
            else if (sender == b && !p.ControlOnly && aFinSeq is { } f && p.Tcp.Has(TcpFlags.Ack) && p.Tcp.AckNumber == f)
            {
                finAckedAt ??= time;
            }
            else if (sender == a && p.ControlOnly && p.Control is { } c && c.Flags == Fin)
            {
                salFinAt ??= time;
            }
        };

        var up = SimApp.RandomBytes(1 << 20, 5);
        var got = SimApp.Transfer(net, a, ca, b, cb, up, TimeSpan.FromSeconds(30));
        Assert.Equal(SimApp.Sha(up), SimApp.Sha(got));

        // B keeps sending (100 kB every 100 ms) while A is half-closed; A keeps reading.
        var down = SimApp.RandomBytes(1_500_000, 6);
        var back = new MemoryStream();
        var buffer = new byte[65536];
        var sent = 0;
        var aEnd = false;
        var statesWhileSending = new HashSet<SalState>();
        void ReadA()
        {
            while (a.Engine.Read(ca, buffer, a.Now, out var n, out var completed) == ServalError.None && (n > 0 || completed))
            {
                back.Write(buffer, 0, n);
                aEnd |= completed;
                if (n == 0)
                {
                    break;
                }
            }

            a.Pump();
        }

        while (sent < down.Length)
        {
            var chunk = Math.Min(100_000, down.Length - sent);
            Assert.Equal(ServalError.None, b.Do(e => e.Write(cb, down.AsSpan(sent, chunk), b.Now, out var w) is var r && w == chunk ? r : ServalError.WouldBlock));
            sent += chunk;
            net.RunFor(TimeSpan.FromMilliseconds(100));
            ReadA();
            statesWhileSending.Add(a.Engine.GetState(ca));
        }

        Assert.Equal([SalState.FinWait2], statesWhileSending);
        Assert.Equal(SalState.CloseWait, b.Engine.GetState(cb));
        Assert.NotNull(finAckedAt);
        Assert.NotNull(salFinAt);
        Assert.InRange(salFinAt.Value - finAckedAt.Value, oneWay, 2 * oneWay);

        b.Do(e => e.Close(cb, b.Now));
        Assert.True(net.RunUntil(() => { ReadA(); return aEnd; }, TimeSpan.FromSeconds(30)), $"A did not read to the end: {back.Length} of {down.Length}");
        Assert.Equal(SimApp.Sha(down), SimApp.Sha(back.ToArray()));
        Assert.True(net.RunUntil(() => a.Engine.GetState(ca) == SalState.TimeWait && b.Engine.FlowCount == 0, TimeSpan.FromSeconds(5)), "the close did not finish");

        a.Do(e => e.Close(ca, a.Now));
        Assert.Equal(1, a.Engine.CompactTimeWaitCount);
        net.RunFor(TimeSpan.FromSeconds(61));
        Assert.Equal(0, a.Engine.FlowCount);
        Assert.Equal(0, b.Engine.FlowCount);
        Assert.Equal(0, a.Engine.Counters.ResetsSent + b.Engine.Counters.ResetsSent);
        Assert.Equal(0, a.Engine.Counters.FlowFaults + b.Engine.Counters.FlowFaults);
    }
}
