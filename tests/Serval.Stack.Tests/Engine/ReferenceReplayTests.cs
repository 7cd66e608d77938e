using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// Interop with the reference's stream behaviour: each side of tcp_basic.pcap (tests/Serval.Wire.Tests/TestData; a
/// 30000-byte transfer from the reference server, then close) is replayed against our engine, with the sequence spaces
/// translated.
/// </summary>
public sealed class ReferenceReplayTests
{
    private static readonly ServiceId RefService = ServiceId.FromNumber(16385);

    [Fact]
    public void Reference_client_side_replayed_against_our_server_completes_the_transfer()
    {
        var reference = ReferenceCapture.TcpBasic();
        var refSynAck = reference.First(x => !x.FromClient && x.P.Control?.Flags == (SalControlFlags.Syn | SalControlFlags.Ack));
        var refServerBytes = reference.Where(x => !x.FromClient).SelectMany(x => x.Payload).ToArray();
        Assert.Equal(30000, refServerBytes.Length);

        var h = new PacketHarness();
        h.Engine.Listen(ServicePrefix.Exact(RefService), TransportProtocol.Stream, 4, h.Now, out var listener);
        SocketHandle conn = default;
        uint ourFlow = 0, salDelta = 0, tcpDelta = 0, ourSalFin = 0;
        long highestSent = 0; // bytes of stream data our server has sent
        var ourIss = 0u;
        var received = new List<SalPacketRepr>();

        void Collect()
        {
            while (h.Pending > 0)
            {
                var p = h.Expect(out var payload);
                received.Add(p);
                if (p.Control is { } c && c.Has(SalControlFlags.Syn | SalControlFlags.Ack))
                {
                    ourFlow = p.SourceFlow.Value;
                    salDelta = c.Verno - refSynAck.P.Control!.Value.Verno;
                    ourIss = p.Tcp.SequenceNumber;
                    tcpDelta = ourIss - refSynAck.P.Tcp.SequenceNumber;
                }

                if (p.Control is { } fin && fin.Has(SalControlFlags.Fin))
                {
                    ourSalFin = fin.Verno;
                }

                if (!p.ControlOnly && p.Protocol == 6 && payload.Length > 0)
                {
                    highestSent = Math.Max(highestSent, (long)(uint)(p.Tcp.SequenceNumber - ourIss - 1) + payload.Length);
                }
            }
        }

        foreach (var x in reference.Where(x => x.FromClient))
        {
            var p = x.P;
            if (!p.DestinationFlow.IsNone)
            {
                p = p with { DestinationFlow = new FlowId(ourFlow) };
            }

            if (p.Control is { } c && c.Ackno != 0)
            {
                var ackno = c.Has(SalControlFlags.Ack) && c.Ackno == refSynAck.P.Control!.Value.Verno + 2 ? ourSalFin + 1 : c.Ackno + salDelta;
                p = p with { Control = c with { Ackno = ackno } };
            }

            if (!p.ControlOnly && p.Tcp.Has(TcpFlags.Ack))
            {
                var ack = p.Tcp.AckNumber + tcpDelta;
                var wanted = (long)(uint)(ack - ourIss - 1);
                for (var i = 0; i < 200 && highestSent < Math.Min(wanted, 30000); i++)
                {
                    h.Advance(TimeSpan.FromMilliseconds(10));
                    Collect();
                }

                p = p with { Tcp = p.Tcp with { AckNumber = ack } };
            }

            if (p.Control is { } f && f.Has(SalControlFlags.Ack) && !f.Has(SalControlFlags.Syn) && p.ControlOnly)
            {
                // The reference acknowledges our SAL FIN: wait until we sent it.
                for (var i = 0; i < 200 && ourSalFin == 0; i++)
                {
                    h.Advance(TimeSpan.FromMilliseconds(10));
                    Collect();
                }

                p = p with { Control = f with { Ackno = ourSalFin + 1 } };
            }

            h.Send(p, x.Payload);
            Collect();
            if (conn.IsNone && h.Engine.Accept(listener, out conn) == ServalError.None)
            {
                // The server application: 30000 bytes (the reference's file), then close.
                Assert.Equal(ServalError.None, h.Engine.Write(conn, refServerBytes, h.Now, out var n));
                Assert.Equal(30000, n);
                h.Engine.Close(conn, h.Now);
                h.Poll();
                Collect();
            }
        }

        Assert.Equal(30000, highestSent);
        // The application released the flow, so TIME-WAIT keeps only its compact record (no transport state): reaching
        // it means our FIN, and so every byte before it, was acknowledged.
        var flow = h.Engine.GetFlows().Single();
        Assert.Equal(SalState.TimeWait, flow.State);
        Assert.Null(flow.Stream);
        Assert.Equal(1, h.Engine.CompactTimeWaitCount);
    }

    [Fact]
    public void Reference_server_side_replayed_against_our_client_delivers_the_file()
    {
        var reference = ReferenceCapture.TcpBasic();
        var refSyn = reference.First(x => x.FromClient && x.P.Control?.Flags == SalControlFlags.Syn);
        var refServerBytes = reference.Where(x => !x.FromClient).SelectMany(x => x.Payload).ToArray();

        var h = new PacketHarness();
        h.Engine.Connect(RefService, TransportProtocol.Stream, h.Now, out var conn);
        h.Poll();
        var syn = h.Expect(p => p.Control?.Flags == SalControlFlags.Syn);
        var salDelta = syn.Control!.Value.Verno - refSyn.P.Control!.Value.Verno;
        var tcpDelta = syn.Tcp.SequenceNumber - refSyn.P.Tcp.SequenceNumber;
        var got = new List<byte>();
        var buf = new byte[65536];
        var completed = false;
        foreach (var x in reference.Where(x => !x.FromClient))
        {
            var p = x.P with { DestinationFlow = syn.SourceFlow };
            if (p.Control is { } c)
            {
                p = p with { Control = c with { Ackno = c.Ackno + salDelta } };
            }

            if (!p.ControlOnly && p.Tcp.Has(TcpFlags.Ack))
            {
                p = p with { Tcp = p.Tcp with { AckNumber = p.Tcp.AckNumber + tcpDelta } };
            }

            h.Send(p, x.Payload);
            h.Drain();
            while (h.Engine.Read(conn, buf, h.Now, out var n, out var done) == ServalError.None && (n > 0 || done))
            {
                got.AddRange(buf.AsSpan(0, n).ToArray());
                completed |= done;
                if (n == 0)
                {
                    break;
                }
            }
        }

        Assert.Equal(refServerBytes, got.ToArray());
        Assert.True(completed, "end of stream");
        Assert.Equal(SalState.CloseWait, h.Engine.GetState(conn)); // the reference closed; our application has not yet
        h.Engine.Close(conn, h.Now);
        h.Poll();
        h.Expect(p => !p.ControlOnly && p.Tcp.Has(TcpFlags.Fin), "our TCP FIN");
    }
}
