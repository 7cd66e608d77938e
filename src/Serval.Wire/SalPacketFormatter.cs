using System.Globalization;
using System.Text;

namespace Serval.Wire;

/// <summary>Readable one-packet descriptions of SAL packets, in the spirit of tshark's packet details.</summary>
public static class SalPacketFormatter
{
    /// <summary>
    /// Describes a parsed packet on several indented lines: SAL base header, each extension, the transport header.
    /// </summary>
    public static string Format(in SalPacketRepr p, int payloadLength, bool? transportChecksumOk = null)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.Append(inv, $"SAL src_flow={p.SourceFlow} dst_flow={p.DestinationFlow} hl={p.SalHeaderLength} proto={(p.Protocol == 6 ? "TCP" : "UDP")}");
        if (p.Control is { } c)
        {
            sb.Append(inv, $"\n  CONTROL {SalControl.FlagsText(c.Flags)} verno={c.Verno} ackno={c.Ackno} nonce={c.Nonce}");
        }

        if (p.DestinationService is { } d)
        {
            sb.Append(inv, $"\n  SERVICE dst={d.ToString("s", null)}");
        }

        if (p.SourceService is { } s)
        {
            sb.Append(inv, $"\n  SERVICE src={s.ToString("s", null)}");
        }

        if (p.SourceRoute is { } r)
        {
            sb.Append(inv, $"\n  {(r.IsIPv6 ? "SOURCE6" : "SOURCE")} {r}");
        }

        if (p.PathProbe is { } probe)
        {
            sb.Append(inv, $"\n  PATH {(probe.IsResponse ? "response" : "challenge")} {probe.Challenge:x16}");
        }

        var ck = transportChecksumOk switch
        {
            true => " csum=ok",
            false => " csum=BAD",
            null => string.Empty,
        };
        if (p.ControlOnly)
        {
            sb.Append("\n  (control only, no transport header)");
        }
        else if (p.Protocol == SalPacketRepr.ProtocolTcp)
        {
            var t = p.Tcp;
            sb.Append(inv, $"\n  TCP [{TcpFlagsText(t.Flags)}] seq={t.SequenceNumber} ack={t.AckNumber} win={t.Window}");
            if (t.MaxSegmentSize is { } mss)
            {
                sb.Append(inv, $" mss={mss}");
            }

            if (t.WindowScale is { } ws)
            {
                sb.Append(inv, $" ws={ws}");
            }

            if (t.SackPermitted)
            {
                sb.Append(" sack_ok");
            }

            if (t.Timestamp is { } ts)
            {
                sb.Append(inv, $" ts={ts.Value}/{ts.EchoReply}");
            }

            for (var i = 0; i < t.SackBlocks.Count; i++)
            {
                sb.Append(inv, $" sack={t.SackBlocks[i].Left}-{t.SackBlocks[i].Right}");
            }

            sb.Append(inv, $" len={payloadLength}{ck}");
        }
        else
        {
            sb.Append(inv, $"\n  UDP len={payloadLength}{(p.Udp.HasChecksum ? string.Empty : " nocsum")}{ck}");
        }

        return sb.ToString();
    }

    /// <summary>TCP flags as <c>SYN,ACK</c>.</summary>
    public static string TcpFlagsText(TcpFlags flags)
    {
        if (flags == TcpFlags.None)
        {
            return "none";
        }

        var parts = new List<string>(4);
        void Add(TcpFlags f, string name)
        {
            if ((flags & f) != 0)
            {
                parts.Add(name);
            }
        }

        Add(TcpFlags.Syn, "SYN");
        Add(TcpFlags.Fin, "FIN");
        Add(TcpFlags.Rst, "RST");
        Add(TcpFlags.Psh, "PSH");
        Add(TcpFlags.Ack, "ACK");
        Add(TcpFlags.Urg, "URG");
        Add(TcpFlags.Ece, "ECE");
        Add(TcpFlags.Cwr, "CWR");
        Add(TcpFlags.Ns, "NS");
        return string.Join(',', parts);
    }
}
