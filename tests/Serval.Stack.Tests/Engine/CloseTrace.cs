using Serval.Wire;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// The close of a stream connection as a list of steps that compare across connections: every number is written
/// relative to what its side had said before, so a trace of ours and one of the reference's capture are equal exactly
/// when both close in the same order with the same flags and the same verno/ackno and sequence arithmetic.
/// </summary>
/// <remarks>
/// The trace starts at the first transport FIN. It holds every transport segment with a FIN, each side's first
/// transport ACK that covers the other side's FIN, and every SAL control packet. A step reads
/// <c>"first SAL Fin v+1 a+1"</c>: the side that closed first (or <c>second</c>), the layer, the flags (PSH left out),
/// then for SAL the verno minus the sender's ISS and the ackno minus the receiver's ISS, for TCP the end of the
/// segment (sequence number + payload) and the acknowledgement number, each minus the end of the data its side had
/// sent (so 0 is "right after the data", 1 "after the data and the FIN").
/// </remarks>
internal static class CloseTrace
{
    public static List<string> Of(IEnumerable<(bool FromClient, SalPacketRepr P, int PayloadLength)> packets)
    {
        var salIss = new uint[2];
        var tcpIss = new uint[2];
        var data = new long[2]; // stream bytes each side sent (its highest sequence end, FIN excluded)
        var finSent = new bool[2];
        var finAcked = new bool[2]; // the other side's FIN acknowledged by this side
        int? first = null;
        var steps = new List<string>();
        foreach (var (fromClient, p, length) in packets)
        {
            var s = fromClient ? 0 : 1;
            var r = 1 - s;
            if (p.Control is { } syn && syn.Has(SalControlFlags.Syn))
            {
                salIss[s] = syn.Verno;
                tcpIss[s] = p.Tcp.SequenceNumber;
                continue;
            }

            if (!p.ControlOnly && p.Protocol == SalPacketRepr.ProtocolTcp)
            {
                var tcp = p.Tcp;
                var end = (long)unchecked(tcp.SequenceNumber + (uint)length - tcpIss[s] - 1);
                if (!finSent[s])
                {
                    data[s] = Math.Max(data[s], end);
                }

                var seq = end - data[s];
                var ack = (long)unchecked(tcp.AckNumber - tcpIss[r] - 1) - data[r];
                if (tcp.Has(TcpFlags.Fin))
                {
                    finSent[s] = true;
                    first ??= s;
                    steps.Add($"{Side(s, first)} TCP {tcp.Flags & ~TcpFlags.Psh} seq+{seq} ack+{ack}");
                }
                else if (finSent[r] && !finAcked[s] && ack == 1)
                {
                    finAcked[s] = true;
                    steps.Add($"{Side(s, first)} TCP {tcp.Flags & ~TcpFlags.Psh} seq+{seq} ack+{ack}");
                }
            }

            if (first is not null && p.Control is { } c)
            {
                steps.Add($"{Side(s, first)} SAL {c.Flags} v+{unchecked(c.Verno - salIss[s])} a+{unchecked(c.Ackno - salIss[r])}");
            }
        }

        return steps;
    }

    /// <summary>The reference's own close: the trace of TestData/tcp_basic.pcap.</summary>
    public static List<string> OfReference() =>
        Of(ReferenceCapture.TcpBasic().Select(x => (x.FromClient, x.P, x.Payload.Length)));

    private static string Side(int side, int? first) => side == first ? "first" : "second";
}
