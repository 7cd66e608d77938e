using System.Buffers.Binary;
using System.Text;
using Serval.Wire;
using Serval.Wire.Pcap;

namespace Serval.Tests;

/// <summary>
/// A byte-level check, written independently of the project's parser, that IP packets carrying Serval streams have
/// the layout of the reference implementation (its captures in tests/Serval.Wire.Tests/TestData; docs/protocol.md §1–3, §8 and §9): IPv4 header of
/// 20 bytes (no options, total length = packet length, not a fragment, valid checksum, TTL above 0) with protocol 144 (or
/// a UDP header on port 54325 for encapsulation), SAL base header with its checksum, CONTROL (20 bytes), SERVICE (36)
/// and SOURCE (4 + 4n) extensions with zero reserved bytes, a TCP header with ports 0 and a valid checksum over the
/// pseudo-header of the IPv4 header the packet carries (unspecified addresses under UDP encapsulation), or nothing
/// after a control-only SAL header. Over raw IP a SYN with a SOURCE extension — one a service router forwarded — must
/// come from SOURCE[0], the client (sr_syn_b.pcap frame 3), to an address not yet in it, and a SYN-ACK with one must go
/// from its last address to SOURCE[0]. Each packet is classified (SYN, SYN-ACK, ...) and reduced to a
/// <see cref="Packet.Shape"/> whose fields are compared with the reference capture's packets of the same kind. TCP
/// options the reference does not offer (SACK-permitted, SACK blocks, timestamps; docs/protocol.md §9 allows them) and
/// payload sizes are not part of the shape. The IPv4 header is compared separately (<see cref="IPShape"/>): who sent the
/// packet to whom (client, router, server) with which TTL, against the reference capture taken at the same place of the
/// same topology — the TTL tells how many IP hops the packet made, so a router that does not decrement it, or that
/// sends from its own address, shows.
/// </summary>
internal static class ReferenceLayout
{
    public enum Kind
    {
        Syn,
        SynAck,
        HandshakeAck,
        Data,
        PureAck,
        TcpFin,
        SalFin,
        SalAck,
    }

    /// <summary>One checked packet: its kind and SAL shape, the IPv4 header's addresses and TTL, and the SAL fields.</summary>
    public sealed record Packet(
        Kind Kind,
        string Shape,
        UInt128 SourceAddress,
        UInt128 DestinationAddress,
        uint SourceFlow,
        uint DestinationFlow,
        uint Verno,
        uint Ackno,
        ulong Nonce,
        int PayloadLength,
        bool UdpEncapsulated)
    {
        /// <summary>The IPv4 TTL or IPv6 hop limit.</summary>
        public byte Ttl { get; init; }

        /// <summary>Whether the packet is IPv6 (addresses are then 128 bits; IPv4 addresses are the low 32).</summary>
        public bool IPv6 { get; init; }

        /// <summary>The addresses of the SOURCE or SOURCE6 extension (empty without one).</summary>
        public IReadOnlyList<UInt128> SourceRoute { get; init; } = [];
    }

    /// <summary>Reads every Serval packet of a capture (any link type <see cref="SalFrame"/> knows) as IP packets.</summary>
    public static List<byte[]> ReadIPPackets(Stream pcap)
    {
        using var reader = new PcapReader(pcap);
        var packets = new List<byte[]>();
        while (reader.TryRead(out var record))
        {
            if (SalFrame.TryLocate(record.LinkType, record.Data, out var frame))
            {
                packets.Add(record.Data[frame.IPOffset..]);
            }
        }

        return packets;
    }

    /// <summary>
    /// Checks one IP packet (IPv4, or IPv6, which the reference does not run over: its packets are checked by the same
    /// rules and reduced to the shape the same packet would have over IPv4, see <see cref="CheckIPv6"/>); throws
    /// <see cref="LayoutException"/> saying what is wrong.
    /// </summary>
    public static Packet Check(ReadOnlySpan<byte> ip)
    {
        Require(ip.Length >= 1, "empty packet");
        return (ip[0] >> 4) switch
        {
            4 => CheckIPv4(ip),
            6 => CheckIPv6(ip),
            var v => throw new LayoutException($"IP version {v}"),
        };
    }

    private static Packet CheckIPv4(ReadOnlySpan<byte> ip)
    {
        Require(ip.Length >= 20, "shorter than an IPv4 header");
        Require(ip[0] == 0x45, $"IPv4 version/IHL byte is 0x{ip[0]:x2}, the reference sends 0x45 (no IP options)");
        Require(BinaryPrimitives.ReadUInt16BigEndian(ip[2..]) == ip.Length, "IPv4 total length differs from the packet length");
        Require((BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3fff) == 0, "IPv4 packet is a fragment");
        Require(ip[8] > 0, "IPv4 TTL is 0");
        Require(Fold(Sum(0, ip[..20])) == 0, "IPv4 header checksum is wrong");
        return CheckAboveIP(ip, 20, ip[9], ip[8], BinaryPrimitives.ReadUInt32BigEndian(ip[12..]), BinaryPrimitives.ReadUInt32BigEndian(ip[16..]), Sum(0, ip[12..20]), ipv6: false);
    }

    /// <summary>
    /// IPv6 (docs/protocol.md: raw IPv6 with next header 144, or UDP): a 40-byte header with no extension headers,
    /// payload length = packet length - 40, hop limit above 0; SOURCE6 (type 5, 16-byte addresses) where IPv4 has
    /// SOURCE; the transport checksum over the IPv6 pseudo-header (RFC 8200 §8.1). The shape is the IPv4 one: SOURCE6 is
    /// written as SOURCE and the MSS 20 bytes larger (the IPv6 header is 20 bytes longer), so that it compares with the
    /// reference's IPv4 captures.
    /// </summary>
    private static Packet CheckIPv6(ReadOnlySpan<byte> ip)
    {
        Require(ip.Length >= 40, "shorter than an IPv6 header");
        Require(BinaryPrimitives.ReadUInt16BigEndian(ip[4..]) == ip.Length - 40, "IPv6 payload length differs from the packet length - 40");
        Require(ip[7] > 0, "IPv6 hop limit is 0");
        Require(ip[6] is ServalInfo.IPProtocolNumber or 17, $"IPv6 next header {ip[6]}, neither 144 nor UDP (no extension headers expected)");
        return CheckAboveIP(ip, 40, ip[6], ip[7], BinaryPrimitives.ReadUInt128BigEndian(ip[8..]), BinaryPrimitives.ReadUInt128BigEndian(ip[24..]), Sum(0, ip[8..40]), ipv6: true);
    }

    private static Packet CheckAboveIP(ReadOnlySpan<byte> ip, int headerLength, byte protocol, byte ttl, UInt128 source, UInt128 destination, ulong addressSum, bool ipv6)
    {
        ReadOnlySpan<byte> sal;
        bool udp;
        if (protocol == ServalInfo.IPProtocolNumber)
        {
            sal = ip[headerLength..];
            udp = false;
        }
        else
        {
            Require(protocol == 17, $"IP protocol {protocol}, neither 144 nor UDP");
            Require(ip.Length >= headerLength + 8, "shorter than a UDP header");
            var ports = (BinaryPrimitives.ReadUInt16BigEndian(ip[headerLength..]), BinaryPrimitives.ReadUInt16BigEndian(ip[(headerLength + 2)..]));
            Require(ports.Item1 == ServalInfo.DefaultUdpPort || ports.Item2 == ServalInfo.DefaultUdpPort, $"UDP ports {ports} do not include 54325");
            Require(BinaryPrimitives.ReadUInt16BigEndian(ip[(headerLength + 4)..]) == ip.Length - headerLength, "UDP length differs from the packet length");
            sal = ip[(headerLength + 8)..];
            udp = true;
        }

        // SAL base header (docs/protocol.md §2).
        Require(sal.Length >= 12, "shorter than a SAL base header");
        var salLength = sal[8] * 4;
        Require(salLength >= 12 && salLength <= sal.Length, $"SAL header length {salLength} out of range");
        Require(sal[9] == 6, $"SAL protocol {sal[9]}, expected TCP (6)");
        Require(Fold(Sum(0, sal[..salLength])) == 0, "SAL checksum is wrong");
        var sourceFlow = BinaryPrimitives.ReadUInt32BigEndian(sal);
        var destinationFlow = BinaryPrimitives.ReadUInt32BigEndian(sal[4..]);
        Require(sourceFlow != 0, "source flowID is 0");

        // Extensions (docs/protocol.md §3), walked by hand.
        var shape = new StringBuilder($"sal hl=# proto={sal[9]} ext=");
        var at = 12;
        int control = 0, service = 0, sourceRoute = 0;
        byte controlFlags = 0;
        uint verno = 0, ackno = 0;
        ulong nonce = 0;
        var route = new List<UInt128>();
        while (at < salLength)
        {
            var type = sal[at] >> 4;
            Require((sal[at] & 0x0f) == 0, "extension type byte has low bits set");
            Require(type != 0, "PAD extension (the reference never sends one)");
            Require(at + 2 <= salLength, "extension header runs past the SAL header");
            var length = sal[at + 1];
            Require(length >= 2 && at + length <= salLength, $"extension length {length} runs past the SAL header");
            var body = sal.Slice(at + 2, length - 2);
            switch (type)
            {
                case 1:
                    Require(length == 20 && ++control == 1, "CONTROL must be 20 bytes and single");
                    Require(body[1] == 0, "CONTROL reserved byte is not zero");
                    controlFlags = body[0];
                    Require(controlFlags is 0x80 or 0xa0 or 0x20 or 0x04, $"CONTROL flags 0x{controlFlags:x2} are not SYN, SYN|ACK, ACK or FIN");
                    verno = BinaryPrimitives.ReadUInt32BigEndian(body[2..]);
                    ackno = BinaryPrimitives.ReadUInt32BigEndian(body[6..]);
                    nonce = BinaryPrimitives.ReadUInt64BigEndian(body[10..]);
                    break;
                case 2:
                    Require(length == 36 && ++service <= 2, "SERVICE must be 36 bytes, at most two");
                    Require(body[0] == 0 && body[1] == 0, "SERVICE reserved bytes are not zero");
                    break;
                case 4:
                    Require(!ipv6, "SOURCE (IPv4 addresses) in an IPv6 packet");
                    Require((length - 4) % 4 == 0 && (length - 4) / 4 is >= 2 and <= 20 && ++sourceRoute == 1, $"SOURCE length {length} is not 4 + 4n (2 <= n <= 20) or repeated");
                    Require(body[0] == 0 && body[1] == 0, "SOURCE reserved bytes are not zero");
                    for (var a = 2; a + 4 <= body.Length; a += 4)
                    {
                        route.Add(BinaryPrimitives.ReadUInt32BigEndian(body[a..]));
                    }

                    break;
                case 5:
                    Require(ipv6, "SOURCE6 (IPv6 addresses) in an IPv4 packet");
                    Require((length - 4) % 16 == 0 && (length - 4) / 16 is >= 2 and <= 15 && ++sourceRoute == 1, $"SOURCE6 length {length} is not 4 + 16n (2 <= n <= 15) or repeated");
                    Require(body[0] == 0 && body[1] == 0, "SOURCE6 reserved bytes are not zero");
                    for (var a = 2; a + 16 <= body.Length; a += 16)
                    {
                        route.Add(BinaryPrimitives.ReadUInt128BigEndian(body[a..]));
                    }

                    break;
                default:
                    throw new LayoutException($"extension type {type} the reference does not send in a stream");
            }

            shape.Append(type switch { 1 => "CONTROL", 2 => "SERVICE", _ => "SOURCE" }).Append('/').Append(type is 4 or 5 ? "4+4n" : length.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(',');
            at += length;
        }

        Require(at == salLength, "extensions do not end at the SAL header length");

        // Over IPv6 the header length is the one the same packet has over IPv4: each SOURCE6 address is 12 bytes longer.
        shape.Replace("hl=#", "hl=" + (ipv6 ? salLength - (12 * route.Count) : salLength).ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (control == 1)
        {
            shape.Append(" control=0x").Append(controlFlags.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        }

        // docs/protocol.md §8 over raw IP: a service router keeps the client's IP source when it forwards the SYN (the
        // transport checksum below is then checked against it); the SYN-ACK goes straight from the server to the client.
        if (route.Count > 0 && !udp)
        {
            if (controlFlags == 0x80)
            {
                Require(source == route[0], $"a forwarded SYN's IP source {Dotted(source)} is not SOURCE[0] {Dotted(route[0])}, the client (a service router keeps the client's source)");
                Require(!route.Contains(destination), $"a forwarded SYN goes to {Dotted(destination)}, already in its SOURCE extension");
            }
            else if (controlFlags == 0xa0)
            {
                Require(source == route[^1] && destination == route[0], $"a SYN-ACK with SOURCE goes from {Dotted(source)} to {Dotted(destination)}, not from its last address to SOURCE[0]");
            }
        }

        // Transport (docs/protocol.md §9): nothing after a control-only header, else a TCP segment with ports 0.
        var segment = sal[salLength..];
        if (segment.Length == 0)
        {
            Require(control == 1 && controlFlags is 0x04 or 0x20, "a control-only packet must be a SAL FIN or ACK");
            shape.Append(" control-only");
            var k = controlFlags == 0x04 ? Kind.SalFin : Kind.SalAck;
            return new Packet(k, shape.ToString(), source, destination, sourceFlow, destinationFlow, verno, ackno, nonce, 0, udp) { Ttl = ttl, SourceRoute = route, IPv6 = ipv6 };
        }

        Require(segment.Length >= 20, "TCP segment shorter than its header");
        Require(BinaryPrimitives.ReadUInt16BigEndian(segment) == 0 && BinaryPrimitives.ReadUInt16BigEndian(segment[2..]) == 0, "TCP ports are not 0");
        var tcpLength = (segment[12] >> 4) * 4;
        Require(tcpLength >= 20 && tcpLength <= segment.Length, $"TCP data offset {tcpLength} out of range");
        Require((segment[12] & 0x0f) == 0, "TCP reserved bits are set");
        Require(BinaryPrimitives.ReadUInt16BigEndian(segment[18..]) == 0, "TCP urgent pointer is set");
        var pseudo = udp ? 0UL : addressSum;
        Require(Fold(Sum(pseudo + 6 + (ulong)segment.Length, segment)) == 0, $"TCP checksum (pseudo-header of this {(ipv6 ? "IPv6" : "IPv4")} header, protocol 6) is wrong");
        var flags = segment[13];
        const byte fin = 0x01, syn = 0x02, rst = 0x04, ack = 0x10;
        Require((flags & rst) == 0 && (flags & 0xc0) == 0, $"TCP flags 0x{flags:x2} (RST/ECN) in a normal stream");

        // TCP options: well formed; MSS and window scale in SYNs only; the rest are optional extras.
        var options = segment[20..tcpLength];
        var kinds = new SortedSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Length;)
        {
            var kind = options[i];
            if (kind == 0)
            {
                break;
            }

            if (kind == 1)
            {
                i++;
                continue;
            }

            Require(i + 1 < options.Length && options[i + 1] >= 2 && i + options[i + 1] <= options.Length, "malformed TCP option");
            var len = options[i + 1];
            switch (kind)
            {
                case 2:
                    Require(len == 4, "MSS option length");
                    kinds.Add("MSS=" + (BinaryPrimitives.ReadUInt16BigEndian(options[(i + 2)..]) + (ipv6 ? 20 : 0)).ToString(System.Globalization.CultureInfo.InvariantCulture));
                    break;
                case 3:
                    Require(len == 3, "window scale option length");
                    kinds.Add("WS");
                    break;
                case 4:
                    Require(len == 2 && (flags & syn) != 0, "SACK-permitted outside a SYN");
                    break;
                case 5:
                    Require((len - 2) % 8 == 0, "SACK option length");
                    break;
                case 8:
                    Require(len == 10, "timestamp option length");
                    break;
                default:
                    throw new LayoutException($"unexpected TCP option {kind}");
            }

            i += len;
        }

        var payload = segment.Length - tcpLength;
        shape.Append(" tcp ports=0/0 syn=").Append((flags & syn) != 0 ? 1 : 0).Append(" ack=").Append((flags & ack) != 0 ? 1 : 0).Append(" opts=").AppendJoin(',', kinds);
        Kind result;
        if (control == 1)
        {
            result = controlFlags switch
            {
                0x80 when flags == syn => Kind.Syn,
                0xa0 when flags == (syn | ack) => Kind.SynAck,
                0x20 when (flags & (syn | fin)) == 0 && (flags & ack) != 0 => Kind.HandshakeAck,
                _ => throw new LayoutException($"CONTROL 0x{controlFlags:x2} with TCP flags 0x{flags:x2}"),
            };
        }
        else
        {
            Require((flags & syn) == 0 && (flags & ack) != 0, $"TCP flags 0x{flags:x2} without a CONTROL extension");
            result = (flags & fin) != 0 ? Kind.TcpFin : payload > 0 ? Kind.Data : Kind.PureAck;
        }

        return new Packet(result, shape.ToString(), source, destination, sourceFlow, destinationFlow, verno, ackno, nonce, payload, udp) { Ttl = ttl, SourceRoute = route, IPv6 = ipv6 };
    }

    /// <summary>
    /// The role of every address in <paramref name="packets"/>: "client" and "server" of each connection (the SYN-ACK's
    /// destination and source, or its SOURCE extension's first and last addresses), "router" for the addresses between
    /// them in a SOURCE extension and for the destination of a client's SYN that is not the server.
    /// </summary>
    public static Dictionary<UInt128, string> Roles(IReadOnlyList<Packet> packets)
    {
        var roles = new Dictionary<UInt128, string>();
        foreach (var p in packets.Where(p => p.Kind == Kind.SynAck))
        {
            var client = p.SourceRoute.Count > 0 ? p.SourceRoute[0] : p.DestinationAddress;
            var server = p.SourceRoute.Count > 0 ? p.SourceRoute[^1] : p.SourceAddress;
            roles[client] = "client";
            roles[server] = "server";
            for (var i = 1; i < p.SourceRoute.Count - 1; i++)
            {
                roles.TryAdd(p.SourceRoute[i], "router");
            }
        }

        foreach (var p in packets.Where(p => p.Kind == Kind.Syn && p.SourceRoute.Count == 0))
        {
            roles.TryAdd(p.DestinationAddress, "router");
        }

        return roles;
    }

    /// <summary>
    /// The IPv4 header of <paramref name="p"/> as compared with the reference: first packet (SYN) or not, who sent it
    /// to whom (<see cref="Roles"/>), and the TTL. Version, header length (no options), protocol 144, total length and
    /// checksum are required by <see cref="Check"/> already.
    /// </summary>
    public static string IPShape(Packet p, IReadOnlyDictionary<UInt128, string> roles)
    {
        string Role(UInt128 a) => roles.TryGetValue(a, out var r) ? r : "unknown " + Dotted(a);
        return $"{(p.Kind == Kind.Syn ? "syn" : "flow")} {Role(p.SourceAddress)}->{Role(p.DestinationAddress)} ttl={p.Ttl}";
    }

    /// <summary>
    /// Checks, with packets captured on the client's link (<paramref name="clientSide"/>) and on the server's
    /// (<paramref name="serverSide"/>), that every SYN a service router forwarded left it with the TTL the client's SYN
    /// had, minus one per service router in its SOURCE extension (docs/protocol.md §8; sr_syn_a.pcap frame 5 and
    /// sr_syn_b.pcap frame 3: 64, then 63). Assumes no plain IP router between the service routers and the server.
    /// Returns how many forwarded SYNs were checked.
    /// </summary>
    public static int CheckForwardedHopLimits(IReadOnlyList<Packet> clientSide, IReadOnlyList<Packet> serverSide)
    {
        var count = 0;
        foreach (var forwarded in serverSide.Where(p => p.Kind == Kind.Syn && p.SourceRoute.Count > 0))
        {
            var original = clientSide.FirstOrDefault(p => p.Kind == Kind.Syn && p.SourceRoute.Count == 0 && p.SourceAddress == forwarded.SourceRoute[0]
                && p.DestinationAddress == forwarded.SourceRoute[1] && p.SourceFlow == forwarded.SourceFlow && p.Verno == forwarded.Verno && p.Nonce == forwarded.Nonce);
            Require(original is not null, $"no SYN from the client {Dotted(forwarded.SourceRoute[0])} to the router for the forwarded SYN of flow {forwarded.SourceFlow}");
            var expected = original!.Ttl - (forwarded.SourceRoute.Count - 1);
            Require(forwarded.Ttl == expected, $"the forwarded SYN arrived with TTL {forwarded.Ttl}; the client's SYN had {original.Ttl} and {forwarded.SourceRoute.Count - 1} service router(s) forwarded it, so it must be {expected}");
            count++;
        }

        return count;
    }

    private static string Dotted(UInt128 a)
    {
        if (a <= uint.MaxValue)
        {
            return $"{a >> 24}.{(a >> 16) & 0xff}.{(a >> 8) & 0xff}.{a & 0xff}";
        }

        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, a);
        return new System.Net.IPAddress(bytes).ToString();
    }

    /// <summary>
    /// Checks the SAL control exchange of every connection in <paramref name="packets"/> against the reference's verno
    /// arithmetic (docs/protocol.md §5–6): SYN ackno 0 and destination flowID 0; SYN-ACK acknowledges verno+1; the
    /// handshake ACK and the SAL FIN use verno+1; a SAL ACK acknowledges the FIN's verno+1; each side keeps its flowIDs
    /// and nonce. Returns the number of connections whose SYN was seen. Packets of connections whose SYN is missing are
    /// skipped.
    /// </summary>
    public static int CheckConversations(IReadOnlyList<Packet> packets)
    {
        var count = 0;
        foreach (var syn in packets.Where(p => p.Kind == Kind.Syn).DistinctBy(p => (p.SourceAddress, p.SourceFlow)))
        {
            count++;
            Require(syn.DestinationFlow == 0 && syn.Ackno == 0, "SYN with a destination flowID or an ackno");
            Require(packets.Where(p => p.Kind == Kind.Syn && p.SourceFlow == syn.SourceFlow && p.SourceAddress == syn.SourceAddress).All(p => p.Verno == syn.Verno && p.Nonce == syn.Nonce), "SYN retransmission with another verno or nonce");
            var synAck = packets.FirstOrDefault(p => p.Kind == Kind.SynAck && p.DestinationFlow == syn.SourceFlow && p.DestinationAddress == syn.SourceAddress);
            if (synAck is null)
            {
                continue;
            }

            Require(synAck.Ackno == syn.Verno + 1, "SYN-ACK does not acknowledge the SYN's verno + 1");
            var client = (syn.SourceFlow, synAck.SourceFlow);
            var server = (synAck.SourceFlow, syn.SourceFlow);
            foreach (var p in packets.Where(p => p.Kind != Kind.Syn && ((p.SourceFlow, p.DestinationFlow) == client || (p.SourceFlow, p.DestinationFlow) == server)))
            {
                var fromClient = (p.SourceFlow, p.DestinationFlow) == client;
                var (mine, theirs) = fromClient ? (syn, synAck) : (synAck, syn);
                switch (p.Kind)
                {
                    case Kind.SynAck:
                        Require(p.Verno == synAck.Verno && p.Nonce == synAck.Nonce, "SYN-ACK retransmission with another verno or nonce");
                        break;
                    case Kind.HandshakeAck:
                        Require(fromClient && p.Verno == syn.Verno + 1 && p.Ackno == synAck.Verno + 1 && p.Nonce == syn.Nonce, "handshake ACK: verno/ackno/nonce differ from the reference's arithmetic");
                        break;
                    case Kind.SalFin:
                        Require(p.Verno == mine.Verno + 1 && p.Nonce == mine.Nonce, "SAL FIN verno is not the side's ISS + 1, or its nonce changed");
                        break;
                    case Kind.SalAck:
                        Require(p.Ackno == theirs.Verno + 2 && p.Nonce == mine.Nonce, "SAL ACK does not acknowledge the peer's FIN (verno + 1), or its nonce changed");
                        break;
                }
            }
        }

        return count;
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new LayoutException(message);
        }
    }

    /// <summary>The Internet checksum of <paramref name="data"/> with an initial sum.</summary>
    public static ushort Checksum(ulong sum, ReadOnlySpan<byte> data) => Fold(Sum(sum, data));

    private static ulong Sum(ulong sum, ReadOnlySpan<byte> data)
    {
        for (var i = 0; i + 1 < data.Length; i += 2)
        {
            sum += (ulong)((data[i] << 8) | data[i + 1]);
        }

        if ((data.Length & 1) != 0)
        {
            sum += (ulong)(data[^1] << 8);
        }

        return sum;
    }

    private static ushort Fold(ulong sum)
    {
        while (sum > 0xffff)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }

        return (ushort)~sum;
    }
}

/// <summary>A packet does not have the reference implementation's layout.</summary>
internal sealed class LayoutException(string message) : Exception(message);
