using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Serval.Testing;
using Serval.Wire.Pcap;
using Xunit;

namespace Serval.Wire.Tests;

/// <summary>
/// The Wireshark dissector (tools/wireshark/serval.lua) run by tshark over the reference captures and over a capture
/// written here (UDP encapsulation over IPv4 and IPv6, every extension, a registration message, malformed packets):
/// every SAL field tshark shows must equal what <see cref="SalPacketRepr"/> decodes from the same bytes. Skipped when
/// tshark is not installed.
/// </summary>
[Trait("Tier", "slow")]
public sealed class WiresharkDissectorTests
{
    private const string SkipMessage = "tshark is not installed (Debian/Ubuntu: apt-get install tshark); the Wireshark dissector is not tested.";

    /// <summary>Every field the comparison reads, in tshark's -e order.</summary>
    private static readonly string[] Fields =
    [
        "serval.src_flow", "serval.dst_flow", "serval.hdr_len", "serval.hdr_bytes", "serval.protocol", "serval.checksum",
        "serval.checksum.status", "serval.control_only", "serval.ext_count", "serval.ext.type",
        "serval.control.flags", "serval.control.flags.syn", "serval.control.flags.rsyn", "serval.control.flags.ack",
        "serval.control.flags.nack", "serval.control.flags.rst", "serval.control.flags.fin", "serval.control.flags.reserved",
        "serval.control.flags.str", "serval.control.reserved", "serval.control.verno", "serval.control.ackno", "serval.control.nonce",
        "serval.service.dst", "serval.service.src", "serval.service.name",
        "serval.source.count", "serval.source.addr", "serval.source6.addr",
        "serval.path.flags.response", "serval.path.challenge",
        "serval.tcp.srcport", "serval.tcp.dstport", "serval.tcp.seq", "serval.tcp.ack", "serval.tcp.hdr_len", "serval.tcp.flags", "serval.tcp.flags.reserved",
        "serval.tcp.flags.str", "serval.tcp.window", "serval.tcp.checksum", "serval.tcp.checksum.status", "serval.tcp.urgent",
        "serval.tcp.option.mss", "serval.tcp.option.wscale", "serval.tcp.option.sack_perm", "serval.tcp.option.ts.val",
        "serval.tcp.option.ts.ecr", "serval.tcp.option.sack.le", "serval.tcp.option.sack.re", "serval.tcp.len",
        "serval.udp.srcport", "serval.udp.dstport", "serval.udp.length", "serval.udp.checksum", "serval.udp.checksum.status", "serval.udp.len",
    ];

    /// <summary>Expert infos and Lua errors; none may appear on a well-formed packet except the note on ADDRESS.</summary>
    private static readonly string[] ExpertFields =
    [
        "serval.truncated", "serval.bad_hdr_len", "serval.bad_checksum", "serval.bad_protocol", "serval.bad_ext", "serval.unknown_ext",
        "serval.too_many_ext", "serval.duplicate_ext", "serval.tcp.malformed", "serval.tcp.bad_checksum", "serval.udp.malformed",
        "serval.udp.bad_checksum", "serval.dissector_error", "serval.ctl.malformed", "_ws.lua.error", "_ws.malformed",
    ];

    private static readonly LinkAddress ClientV4 = LinkAddress.Parse("192.0.2.1:54325");
    private static readonly LinkAddress ServerV4 = LinkAddress.Parse("192.0.2.2:54325");
    private static readonly ServiceId EchoService = ServiceId.FromName("demo.echo");
    private static readonly ServiceId RouterService = ServiceId.FromName("serval.router");

    public static TheoryData<string> Captures => CaptureTests.Captures;

    [Theory]
    [MemberData(nameof(Captures))]
    public void Reference_capture_fields_equal_the_wire_decoder(string capture)
    {
        var tshark = FindTshark();
        Assert.SkipWhen(tshark is null, SkipMessage);
        var path = CaptureTests.PathOf(capture);
        var rows = RunTshark(tshark!, path, null);
        var compared = CompareAll(PcapReader.ReadAll(File.OpenRead(path)), rows, names: null);
        Assert.True(compared > 0, $"{capture}: no Serval packet compared");
    }

    [Fact]
    public void Udp_encapsulation_ipv6_every_extension_and_names_equal_the_wire_decoder()
    {
        var tshark = FindTshark();
        Assert.SkipWhen(tshark is null, SkipMessage);
        using var dir = new TempDir();
        var names = Path.Combine(dir.Path, "services.txt");
        File.WriteAllText(names, $"# serviceID names\n{EchoService} demo.echo\n0x00004001 reference-echo\n");
        var capture = Path.Combine(dir.Path, "synthetic.pcap");
        var records = WriteSynthetic(capture);

        var rows = RunTshark(tshark!, capture, names);
        var nameMap = new Dictionary<ServiceId, string> { [EchoService] = "demo.echo", [ServiceId.FromNumber(16385)] = "reference-echo", [RouterService] = "serval.router" };
        var compared = CompareAll(records, rows, nameMap);
        Assert.Equal(records.Count - 1, compared); // all but the one on another UDP port, which SalFrame does not look at

        // The datagram on UDP port 40000 is found by the heuristic.
        var heuristic = rows[records.Count];
        Assert.Equal("3735928559", heuristic["serval.src_flow"]);
        Assert.Equal("1", heuristic["serval.checksum.status"]);

        // The registration message in the unconnected datagram to the router serviceID.
        var ctl = RunTshark(tshark!, capture, names, ["serval.ctl.version", "serval.ctl.type", "serval.ctl.flags", "serval.ctl.status", "serval.ctl.sender",
            "serval.ctl.sequence", "serval.ctl.epoch", "serval.ctl.timestamp", "serval.ctl.weight", "serval.ctl.lease", "serval.ctl.prefix_bits",
            "serval.ctl.transports", "serval.ctl.reserved", "serval.ctl.service_id", "serval.ctl.target.family", "serval.ctl.target.port",
            "serval.ctl.target.weight", "serval.ctl.target.addr", "serval.ctl.mac", "serval.ctl.malformed"]);
        Assert.All(ctl.Values, r => Assert.Equal(string.Empty, r["serval.ctl.malformed"]));
        var register = ctl.Values.Single(r => r["serval.ctl.type"] == "1");
        Assert.Equal("1", register["serval.ctl.version"]);
        Assert.Equal("1", register["serval.ctl.type"]);
        Assert.Equal(4, ParseNumber(register["serval.ctl.flags"]));
        Assert.Equal("0", register["serval.ctl.status"]);
        Assert.Equal("1122334455667788", register["serval.ctl.sender"]);
        Assert.Equal("42", register["serval.ctl.sequence"]);
        Assert.Equal("0000000000000000", register["serval.ctl.epoch"]);
        Assert.Equal("1700000000000", register["serval.ctl.timestamp"]);
        Assert.Equal("1024", register["serval.ctl.weight"]);
        Assert.Equal("60000", register["serval.ctl.lease"]);
        Assert.Equal("256", register["serval.ctl.prefix_bits"]);
        Assert.Equal(3, ParseNumber(register["serval.ctl.transports"]));
        Assert.Equal(EchoService.ToString(), register["serval.ctl.service_id"]);
        Assert.Equal(string.Empty, register["serval.ctl.mac"]);

        // The router's ResolveAck: one target and the MAC trailer.
        var answer = ctl.Values.Single(r => r["serval.ctl.type"] == "6");
        Assert.Equal(1, ParseNumber(answer["serval.ctl.flags"]));
        Assert.Equal("30000", answer["serval.ctl.lease"]);
        Assert.Equal("32", answer["serval.ctl.prefix_bits"]);
        Assert.Equal("4", answer["serval.ctl.target.family"]);
        Assert.Equal("54325", answer["serval.ctl.target.port"]);
        Assert.Equal("7", answer["serval.ctl.target.weight"]);
        Assert.Equal("198.51.100.9", answer["serval.ctl.target.addr"]);
        Assert.Equal(string.Concat(Enumerable.Repeat("ab", 32)), answer["serval.ctl.mac"]);
    }

    [Theory]
    [InlineData("tcp_basic.pcap")]
    [InlineData("udp_basic.pcap")]
    public void Transport_handoff_gives_wiresharks_tcp_and_udp_the_transport_header(string capture)
    {
        var tshark = FindTshark();
        Assert.SkipWhen(tshark is null, SkipMessage);
        var path = CaptureTests.PathOf(capture);
        var rows = RunTshark(tshark!, path, null, ["tcp.seq_raw", "tcp.ack_raw", "tcp.window_size_value", "tcp.srcport", "udp.length", "udp.srcport", "serval.src_flow"],
            ["-o", "serval.transport_handoff:TRUE"]);
        var records = PcapReader.ReadAll(File.OpenRead(path));
        var checkedTransport = 0;
        for (var i = 0; i < records.Count; i++)
        {
            if (!SalFrame.TryLocate(records[i].LinkType, records[i].Data, out var f)
                || !SalPacketRepr.TryParse(records[i].Data.AsSpan(f.SalOffset, f.SalLength), out var p, out _, out var payloadLength, out _))
            {
                continue;
            }

            var row = rows[i + 1];
            Assert.Equal(p.SourceFlow.Value.ToString(CultureInfo.InvariantCulture), row["serval.src_flow"]);
            if (p.ControlOnly)
            {
                continue;
            }

            // The transport header's own ports (0) follow the outer header's, if any: the last occurrence is ours.
            if (p.Protocol == SalPacketRepr.ProtocolTcp)
            {
                Assert.Equal(p.Tcp.SequenceNumber.ToString(CultureInfo.InvariantCulture), row["tcp.seq_raw"].Split(',')[^1]);
                Assert.Equal(p.Tcp.AckNumber.ToString(CultureInfo.InvariantCulture), row["tcp.ack_raw"].Split(',')[^1]);
                Assert.Equal(p.Tcp.Window.ToString(CultureInfo.InvariantCulture), row["tcp.window_size_value"].Split(',')[^1]);
                Assert.Equal("0", row["tcp.srcport"].Split(',')[^1]);
            }
            else
            {
                Assert.Equal((payloadLength + 8).ToString(CultureInfo.InvariantCulture), row["udp.length"].Split(',')[^1]);
                Assert.Equal("0", row["udp.srcport"].Split(',')[^1]);
            }

            checkedTransport++;
        }

        Assert.True(checkedTransport > 0);
    }

    [Fact]
    public void Fuzzed_packets_never_break_the_dissector_and_agree_with_the_wire_decoder()
    {
        var tshark = FindTshark();
        Assert.SkipWhen(tshark is null, SkipMessage);
        using var dir = new TempDir();
        var capture = Path.Combine(dir.Path, "fuzz.pcap");
        var fuzzer = new PacketFuzzer(20261207);
        const int count = 3000;
        using (var w = new PcapWriter(File.Create(capture), PcapLinkType.Raw))
        {
            var time = 1_700_000_000_000_000_000L;
            for (var i = 0; i < count; i++)
            {
                var udp = i % 2 == 1;
                var (src, dst) = udp ? (ClientV4, ServerV4) : (fuzzer.Addresses[0], fuzzer.Addresses[1]);
                var sal = fuzzer.Next(TransportPseudoHeader.ForLink(src, dst));
                w.Write(time += 1_000_000, udp ? Udp(src, dst, sal) : Ip(src, dst, 144, sal));
            }
        }

        var rows = RunTshark(tshark!, capture, null);
        var records = PcapReader.ReadAll(File.OpenRead(capture));
        var accepted = 0;
        for (var i = 0; i < records.Count; i++)
        {
            var frame = i + 1;
            var row = rows[frame];
            Assert.True(row["serval.dissector_error"].Length == 0 && row["_ws.lua.error"].Length == 0,
                $"frame {frame}: {row["serval.dissector_error"]}{row["_ws.lua.error"]}");
            Assert.True(SalFrame.TryLocate(records[i].LinkType, records[i].Data, out var f), $"frame {frame}: not located");
            var sal = records[i].Data.AsSpan(f.SalOffset, f.SalLength);
            if (SalPacketRepr.TryParse(sal, out _, out _, out _, out var why))
            {
                CompareFrame(frame, sal, f, row, null);
                accepted++;
            }
            else if (sal.Length > 0) // Wireshark hands an empty IP or UDP payload to no dissector.
            {
                Assert.True(ExpertFields.Any(e => row[e].Length > 0), $"frame {frame}: the wire decoder rejects it ({why}) and tshark reports nothing: {Convert.ToHexString(sal)}");
            }
        }

        Assert.True(accepted > count / 10, $"only {accepted} of {count} fuzz packets parse");
    }

    /// <summary>docs/protocol.md §15, "A worked example: one SYN": the bytes and the values its table gives them.</summary>
    [Fact]
    public void The_worked_example_of_the_protocol_page_shows_the_documented_values()
    {
        var tshark = FindTshark();
        Assert.SkipWhen(tshark is null, SkipMessage);
        var sal = Convert.FromHexString(
            "3c9e5a1700000000110669dc10148000"
            + "8d2b4f60000000005f3a9c0e71d2b486"
            + "20240000000040010000000000000000"
            + "00000000000000000000000000000000"
            + "00000000000000006b1d09e200000000"
            + "a002ffff6cc70000020405a80402080a"
            + "0001e2400000000001030307");
        Assert.Equal(108, sal.Length);
        using var dir = new TempDir();
        var capture = Path.Combine(dir.Path, "worked-example.pcap");
        using (var w = new PcapWriter(File.Create(capture), PcapLinkType.Raw))
        {
            w.Write(1_700_000_000_000_000_000L, Ip(LinkAddress.Parse("192.0.2.1"), LinkAddress.Parse("192.0.2.2"), 144, sal));
        }

        var row = RunTshark(tshark!, capture, null)[1];
        var expected = new Dictionary<string, string>
        {
            ["serval.src_flow"] = "0x3c9e5a17",
            ["serval.dst_flow"] = "0",
            ["serval.hdr_len"] = "17",
            ["serval.hdr_bytes"] = "68",
            ["serval.protocol"] = "6",
            ["serval.checksum"] = "0x69dc",
            ["serval.checksum.status"] = "1",
            ["serval.ext.type"] = "1,2",
            ["serval.control.flags.str"] = "SYN",
            ["serval.control.verno"] = "0x8d2b4f60",
            ["serval.control.ackno"] = "0",
            ["serval.control.nonce"] = "5f3a9c0e71d2b486",
            ["serval.service.dst"] = "00004001" + new string('0', 56),
            ["serval.tcp.seq"] = "0x6b1d09e2",
            ["serval.tcp.hdr_len"] = "40",
            ["serval.tcp.flags.str"] = "SYN",
            ["serval.tcp.window"] = "65535",
            ["serval.tcp.checksum"] = "0x6cc7",
            ["serval.tcp.checksum.status"] = "1",
            ["serval.tcp.option.mss"] = "1448",
            ["serval.tcp.option.sack_perm"] = "1",
            ["serval.tcp.option.ts.val"] = "123456",
            ["serval.tcp.option.ts.ecr"] = "0",
            ["serval.tcp.option.wscale"] = "7",
            ["serval.tcp.len"] = "0",
            ["serval.control_only"] = "0",
        };
        foreach (var (field, want) in expected)
        {
            Assert.True(Same(field, want, row[field]), $"{field}: docs/protocol.md §15 says '{want}', tshark says '{row[field]}'");
        }

        Assert.All(ExpertFields, f => Assert.Equal(string.Empty, row[f]));
    }

    [Fact]
    public void Malformed_packets_are_expert_info_and_rejected_by_the_wire_decoder()
    {
        var tshark = FindTshark();
        Assert.SkipWhen(tshark is null, SkipMessage);
        using var dir = new TempDir();
        var capture = Path.Combine(dir.Path, "malformed.pcap");
        var cases = WriteMalformed(capture);
        var rows = RunTshark(tshark!, capture, null);
        var records = PcapReader.ReadAll(File.OpenRead(capture));
        for (var i = 0; i < cases.Count; i++)
        {
            var (expert, error) = cases[i];
            var frame = i + 1;
            Assert.True(SalFrame.TryLocate(records[i].LinkType, records[i].Data, out var f), $"frame {frame}: not located");
            Assert.False(SalPacketRepr.TryParse(records[i].Data.AsSpan(f.SalOffset, f.SalLength), out _, out _, out _, out var why), $"frame {frame}: the wire decoder accepted it");
            Assert.Equal(error, why);
            var row = rows[frame];
            Assert.True(row[expert].Length > 0, $"frame {frame}: no expert info {expert}; got {Describe(row, ExpertFields)}");
            Assert.Equal(string.Empty, row["serval.dissector_error"]);
            Assert.Equal(string.Empty, row["_ws.lua.error"]);
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Comparison with the wire decoder
    // ---------------------------------------------------------------------------------------------------------------

    private static int CompareAll(List<PcapRecord> records, Dictionary<int, Dictionary<string, string>> rows, Dictionary<ServiceId, string>? names)
    {
        var compared = 0;
        for (var i = 0; i < records.Count; i++)
        {
            var frame = i + 1;
            var rec = records[i];
            if (!SalFrame.TryLocate(rec.LinkType, rec.Data, out var f))
            {
                continue;
            }

            var sal = rec.Data.AsSpan(f.SalOffset, f.SalLength);
            Assert.True(SalPacketRepr.TryParse(sal, out _, out _, out _, out var error), $"frame {frame}: {error}");
            Assert.True(rows.TryGetValue(frame, out var row), $"frame {frame}: tshark printed nothing");
            CompareFrame(frame, sal, f, row, names);
            compared++;
        }

        return compared;
    }

    /// <summary>Every field of a packet the wire decoder accepts, and no error expert info but a bad transport checksum.</summary>
    private static void CompareFrame(int frame, ReadOnlySpan<byte> sal, in SalFrame f, Dictionary<string, string> row, Dictionary<ServiceId, string>? names)
    {
        Assert.True(SalPacketRepr.TryParse(sal, out var p, out _, out var payloadLength, out var error), $"frame {frame}: {error}");
        var transportOk = SalPacketRepr.VerifyTransportChecksum(sal, f.PseudoHeader);
        var expected = Expected(sal, p, payloadLength, transportOk, names);
        foreach (var field in Fields)
        {
            var want = expected.GetValueOrDefault(field, string.Empty);
            var got = row[field];
            Assert.True(Same(field, want, got), $"frame {frame} {field}: the wire decoder says '{want}', tshark says '{got}'");
        }

        var checksumExpert = p.Protocol == SalPacketRepr.ProtocolTcp ? "serval.tcp.bad_checksum" : "serval.udp.bad_checksum";
        foreach (var field in ExpertFields)
        {
            if (field == checksumExpert && !transportOk)
            {
                Assert.True(row[field].Length > 0, $"frame {frame}: the transport checksum is bad and tshark does not say so");
                continue;
            }

            Assert.True(row[field].Length == 0, $"frame {frame}: unexpected {field}: {row[field]}");
        }
    }

    private static Dictionary<string, string> Expected(ReadOnlySpan<byte> sal, in SalPacketRepr p, int payloadLength, bool transportOk, Dictionary<ServiceId, string>? names)
    {
        var inv = CultureInfo.InvariantCulture;
        string N(long v) => v.ToString(inv);
        string B(bool v) => v ? "1" : "0";
        var e = new Dictionary<string, string>
        {
            ["serval.src_flow"] = N(p.SourceFlow.Value),
            ["serval.dst_flow"] = N(p.DestinationFlow.Value),
            ["serval.hdr_len"] = N(sal[8]),
            ["serval.hdr_bytes"] = N(sal[8] * 4),
            ["serval.protocol"] = N(p.Protocol),
            ["serval.checksum"] = N(BinaryPrimitives.ReadUInt16BigEndian(sal[10..])),
            ["serval.checksum.status"] = "1",
            ["serval.control_only"] = B(p.ControlOnly),
        };
        var types = ExtensionTypes(sal[12..(sal[8] * 4)]);
        e["serval.ext_count"] = N(types.Count);
        if (types.Count > 0)
        {
            e["serval.ext.type"] = string.Join(",", types.Select(t => N(t)));
        }

        if (p.Control is { } c)
        {
            var flags = (byte)c.Flags;
            e["serval.control.flags"] = N(flags);
            e["serval.control.flags.syn"] = B(c.Has(SalControlFlags.Syn));
            e["serval.control.flags.rsyn"] = B(c.Has(SalControlFlags.Rsyn));
            e["serval.control.flags.ack"] = B(c.Has(SalControlFlags.Ack));
            e["serval.control.flags.nack"] = B(c.Has(SalControlFlags.Nack));
            e["serval.control.flags.rst"] = B(c.Has(SalControlFlags.Rst));
            e["serval.control.flags.fin"] = B(c.Has(SalControlFlags.Fin));
            e["serval.control.flags.reserved"] = N(flags & 3);
            e["serval.control.flags.str"] = SalControl.FlagsText(c.Flags);
            e["serval.control.reserved"] = N(c.Reserved);
            e["serval.control.verno"] = N(c.Verno);
            e["serval.control.ackno"] = N(c.Ackno);
            e["serval.control.nonce"] = c.Nonce.ToString();
        }

        var named = new List<string>();
        if (p.DestinationService is { } d)
        {
            e["serval.service.dst"] = d.ToString();
            if (names is not null && names.TryGetValue(d, out var n))
            {
                named.Add(n);
            }
        }

        if (p.SourceService is { } s)
        {
            e["serval.service.src"] = s.ToString();
            if (names is not null && names.TryGetValue(s, out var n))
            {
                named.Add(n);
            }
        }

        if (named.Count > 0)
        {
            e["serval.service.name"] = string.Join(',', named);
        }

        if (p.SourceRoute is { } r)
        {
            e["serval.source.count"] = N(r.Count);
            var list = new List<string>();
            foreach (var a in r.Addresses)
            {
                list.Add(a.ToIPAddress().ToString());
            }

            e[r.IsIPv6 ? "serval.source6.addr" : "serval.source.addr"] = string.Join(',', list);
        }

        if (p.PathProbe is { } probe)
        {
            e["serval.path.flags.response"] = B(probe.IsResponse);
            e["serval.path.challenge"] = probe.Challenge.ToString("x16", inv);
        }

        if (p.ControlOnly)
        {
            return e;
        }

        var segment = sal[(sal[8] * 4)..];
        if (p.Protocol == SalPacketRepr.ProtocolTcp)
        {
            var t = p.Tcp;
            e["serval.tcp.srcport"] = N(BinaryPrimitives.ReadUInt16BigEndian(segment)); // 0 when we send; not checked by receivers
            e["serval.tcp.dstport"] = N(BinaryPrimitives.ReadUInt16BigEndian(segment[2..]));
            e["serval.tcp.seq"] = N(t.SequenceNumber);
            e["serval.tcp.ack"] = N(t.AckNumber);
            e["serval.tcp.hdr_len"] = N((segment[12] >> 4) * 4);
            e["serval.tcp.flags"] = N((ushort)t.Flags);
            e["serval.tcp.flags.reserved"] = N((segment[12] >> 1) & 7); // not part of TcpFlags
            e["serval.tcp.flags.str"] = SalPacketFormatter.TcpFlagsText(t.Flags);
            e["serval.tcp.window"] = N(t.Window);
            e["serval.tcp.checksum"] = N(BinaryPrimitives.ReadUInt16BigEndian(segment[16..]));
            e["serval.tcp.checksum.status"] = transportOk ? "1" : "0";
            e["serval.tcp.urgent"] = N(t.UrgentPointer);
            if (t.MaxSegmentSize is { } mss)
            {
                e["serval.tcp.option.mss"] = N(mss);
            }

            if (t.WindowScale is { } ws)
            {
                e["serval.tcp.option.wscale"] = N(ws);
            }

            if (t.SackPermitted)
            {
                e["serval.tcp.option.sack_perm"] = "1";
            }

            if (t.Timestamp is { } ts)
            {
                e["serval.tcp.option.ts.val"] = N(ts.Value);
                e["serval.tcp.option.ts.ecr"] = N(ts.EchoReply);
            }

            if (t.SackBlocks.Count > 0)
            {
                var blocks = Enumerable.Range(0, t.SackBlocks.Count).Select(i => t.SackBlocks[i]).ToList();
                e["serval.tcp.option.sack.le"] = string.Join(',', blocks.Select(b => N(b.Left)));
                e["serval.tcp.option.sack.re"] = string.Join(',', blocks.Select(b => N(b.Right)));
            }

            e["serval.tcp.len"] = N(payloadLength);
        }
        else
        {
            var checksum = BinaryPrimitives.ReadUInt16BigEndian(segment[6..]);
            e["serval.udp.srcport"] = N(BinaryPrimitives.ReadUInt16BigEndian(segment)); // 0 when we send; not checked by receivers
            e["serval.udp.dstport"] = N(BinaryPrimitives.ReadUInt16BigEndian(segment[2..]));
            e["serval.udp.length"] = N(payloadLength + UdpRepr.HeaderLength);
            e["serval.udp.checksum"] = N(checksum);
            e["serval.udp.checksum.status"] = !p.Udp.HasChecksum ? "2" : transportOk ? "1" : "0";
            e["serval.udp.len"] = N(payloadLength);
        }

        return e;
    }

    /// <summary>The type of every extension in the area, PAD included (the walk of docs/protocol.md §3).</summary>
    private static List<int> ExtensionTypes(ReadOnlySpan<byte> ext)
    {
        var types = new List<int>();
        var i = 0;
        while (i < ext.Length)
        {
            var type = ext[i] >> 4;
            types.Add(type);
            i += type == 0 ? 1 : ext[i + 1];
        }

        return types;
    }

    private static bool Same(string field, string want, string got)
    {
        if (want == got)
        {
            return true;
        }

        if (want.Length == 0 || got.Length == 0)
        {
            return false;
        }

        if (field.EndsWith(".addr", StringComparison.Ordinal))
        {
            return want.Split(',').Select(IPAddress.Parse).SequenceEqual(got.Split(',').Select(IPAddress.Parse));
        }

        // Numbers: tshark prints hex fields as 0x…, booleans as 1/0 or True/False depending on its version.
        var w = want.Split(',');
        var g = got.Split(',');
        return w.Length == g.Length && w.Zip(g).All(x => ParseNumber(x.First) is { } a && ParseNumber(x.Second) == a);
    }

    private static long? ParseNumber(string text) => text switch
    {
        "True" => 1,
        "False" => 0,
        _ when text.StartsWith("0x", StringComparison.Ordinal) && long.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var h) => h,
        _ when long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var d) => d,
        _ => null,
    };

    private static string Describe(Dictionary<string, string> row, string[] fields) =>
        string.Join("; ", fields.Where(f => row[f].Length > 0).Select(f => $"{f}={row[f]}"));

    // ---------------------------------------------------------------------------------------------------------------
    // Captures written here
    // ---------------------------------------------------------------------------------------------------------------

    private static List<PcapRecord> WriteSynthetic(string path)
    {
        var v6Client = LinkAddress.Parse("[2001:db8::1]:54325");
        var v6Router = LinkAddress.Parse("[2001:db8::fe]:54325");
        var v6Server = LinkAddress.Parse("[2001:db8::2]:54325");
        var control = new SalControl(SalControlFlags.Syn, 0x8d2b4f60, 0, new Nonce(0x5f3a9c0e71d2b486));
        var syn = new SalPacketRepr
        {
            SourceFlow = new FlowId(0x3c9e5a17),
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = control,
            DestinationService = EchoService,
            Tcp = new TcpRepr
            {
                SequenceNumber = 0x6b1d09e2,
                Flags = TcpFlags.Syn,
                Window = 65535,
                MaxSegmentSize = 1440,
                WindowScale = 7,
                SackPermitted = true,
                Timestamp = new TcpTimestamp(123456, 0),
            },
        };
        var data = new SalPacketRepr
        {
            SourceFlow = new FlowId(0x3c9e5a17),
            DestinationFlow = new FlowId(0x11223344),
            Protocol = SalPacketRepr.ProtocolTcp,
            Tcp = new TcpRepr
            {
                SequenceNumber = 1000,
                AckNumber = 2000,
                Flags = TcpFlags.Ack | TcpFlags.Psh,
                Window = 512,
                Timestamp = new TcpTimestamp(7, 8),
                SackBlocks = TcpSackBlocks.From([new TcpSackBlock(3000, 4000), new TcpSackBlock(5000, 6000)]),
            },
        };
        var register = new SalPacketRepr
        {
            SourceFlow = new FlowId(77),
            Protocol = SalPacketRepr.ProtocolUdp,
            DestinationService = RouterService,
            SourceService = ServiceId.Parse("0xabcdef"),
            Udp = new UdpRepr { HasChecksum = true },
        };
        var forwarded6 = new SalPacketRepr
        {
            SourceFlow = new FlowId(5),
            Protocol = SalPacketRepr.ProtocolUdp,
            Control = new SalControl(SalControlFlags.Syn | SalControlFlags.Ack, 9, 10, new Nonce(0x0102030405060708), Reserved: 0),
            DestinationService = ServiceId.FromNumber(16385),
            SourceRoute = new SalSourceRoute([v6Client.WithPort(0), v6Router.WithPort(0), v6Server.WithPort(0)]),
            Udp = new UdpRepr { HasChecksum = true },
        };
        var challenge = new SalPacketRepr
        {
            SourceFlow = new FlowId(0x11223344),
            DestinationFlow = new FlowId(0x3c9e5a17),
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Ack, 100, 200, default),
            PathProbe = new SalPathProbe(false, 0xfedcba9876543210),
            ControlOnly = true,
        };
        var response = challenge with
        {
            Control = new SalControl(SalControlFlags.Ack, 200, 100, new Nonce(42)),
            PathProbe = new SalPathProbe(true, 0xfedcba9876543210),
        };
        var reset = new SalPacketRepr
        {
            DestinationFlow = new FlowId(0x3c9e5a17),
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Rst | SalControlFlags.Ack | SalControlFlags.Nack, 0, 0x8d2b4f61, new Nonce(0x5f3a9c0e71d2b486)),
            ControlOnly = true,
        };
        var forwarded4 = syn with
        {
            SourceRoute = new SalSourceRoute([LinkAddress.Parse("192.0.2.1"), LinkAddress.Parse("198.51.100.1")]),
            Udp = default,
            Protocol = SalPacketRepr.ProtocolUdp,
        };

        using (var w = new PcapWriter(File.Create(path), PcapLinkType.Raw))
        {
            var time = 1_700_000_000_000_000_000L;
            void Write(byte[] frame) => w.Write(time += 1_000_000, frame);
            Write(Udp(ClientV4, ServerV4, Sal(syn, [], ClientV4, ServerV4)));
            Write(Udp(ServerV4, ClientV4, Sal(data, [1, 2, 3, 4, 5, 6, 7], ServerV4, ClientV4)));
            Write(Udp(ClientV4, ServerV4, Sal(register, RegisterMessage(), ClientV4, ServerV4)));
            var resolveAck = register with { SourceFlow = new FlowId(78), DestinationService = register.SourceService, SourceService = RouterService };
            Write(Udp(ServerV4, ClientV4, Sal(resolveAck, ResolveAckMessage(), ServerV4, ClientV4)));
            Write(Udp(v6Router, v6Server, Sal(forwarded6, [9, 9], v6Router, v6Server)));
            Write(Udp(ServerV4, ClientV4, Sal(challenge, [], ServerV4, ClientV4)));
            Write(Udp(ClientV4, ServerV4, Sal(response, [], ClientV4, ServerV4)));
            Write(Udp(ServerV4, ClientV4, Sal(reset, [], ServerV4, ClientV4)));
            Write(Udp(ClientV4, ServerV4, Sal(forwarded4, [0x42], ClientV4, ServerV4)));

            // Raw IP 144, with PAD and ADDRESS extensions the emitter never writes (accepted and ignored), and a UDP
            // checksum of 0 ("not computed").
            Write(Ip(ClientV4.WithPort(0), ServerV4.WithPort(0), 144, PadAndAddress()));

            // On another UDP port: only the heuristic finds it (SalFrame looks at 54324-54325 alone).
            var odd = new SalPacketRepr { SourceFlow = new FlowId(0xdeadbeef), Protocol = SalPacketRepr.ProtocolUdp, Udp = new UdpRepr { HasChecksum = true } };
            var from = LinkAddress.Parse("192.0.2.7:40000");
            var to = LinkAddress.Parse("192.0.2.8:40000");
            Write(Udp(from, to, Sal(odd, [1], from, to)));
        }

        return PcapReader.ReadAll(File.OpenRead(path));
    }

    private static List<(string Expert, WireError Error)> WriteMalformed(string path)
    {
        var good = new SalPacketRepr
        {
            SourceFlow = new FlowId(1),
            DestinationFlow = new FlowId(2),
            Protocol = SalPacketRepr.ProtocolUdp,
            Control = new SalControl(SalControlFlags.Fin, 1, 2, new Nonce(3)),
            Udp = new UdpRepr { HasChecksum = true },
        };
        var cases = new List<(string, WireError, byte[])>();
        byte[] Good() => Sal(good, [1, 2, 3], ClientV4, ServerV4);

        cases.Add(("serval.truncated", WireError.Truncated, Good()[..8]));
        var b = Good();
        b[8] = 200;
        cases.Add(("serval.bad_hdr_len", WireError.BadHeaderLength, b));
        b = Good();
        b[16] ^= 0x55; // verno: the SAL checksum no longer verifies
        cases.Add(("serval.bad_checksum", WireError.BadSalChecksum, b));
        b = Good();
        b[9] = 99;
        cases.Add(("serval.bad_protocol", WireError.UnknownTransport, Refill(b)));
        b = Good();
        b[12] = 0x70; // type 7
        cases.Add(("serval.unknown_ext", WireError.UnknownExtension, Refill(b)));
        b = Good();
        b[13] = 36; // CONTROL claims 36 bytes: past the header
        cases.Add(("serval.bad_ext", WireError.BadExtensionLength, Refill(b)));
        b = Good();
        b[32 + 4] = 0xFF; // UDP length beyond the datagram
        cases.Add(("serval.udp.malformed", WireError.BadUdpLength, b));
        var tcp = good with { Protocol = SalPacketRepr.ProtocolTcp, Tcp = new TcpRepr { Flags = TcpFlags.Ack } };
        b = Sal(tcp, [], ClientV4, ServerV4);
        b[32 + 12] = 0xF0; // data offset 60 bytes
        cases.Add(("serval.tcp.malformed", WireError.BadDataOffset, b));
        b = Sal(tcp, [], ClientV4, ServerV4)[..(32 + 10)];
        cases.Add(("serval.tcp.malformed", WireError.Truncated, b));
        b = Sal(good with { Control = null }, [], ClientV4, ServerV4);
        var twoControls = new byte[12 + 40 + 8];
        b.AsSpan(0, 12).CopyTo(twoControls);
        twoControls[8] = 13;
        new SalControl(SalControlFlags.Ack, 1, 1, default).Emit(twoControls.AsSpan(12));
        new SalControl(SalControlFlags.Ack, 2, 2, default).Emit(twoControls.AsSpan(32));
        b.AsSpan(12).CopyTo(twoControls.AsSpan(52));
        cases.Add(("serval.duplicate_ext", WireError.DuplicateControl, Refill(twoControls)));

        using (var w = new PcapWriter(File.Create(path), PcapLinkType.Raw))
        {
            var time = 1_700_000_000_000_000_000L;
            foreach (var (_, _, sal) in cases)
            {
                w.Write(time += 1_000_000, Udp(ClientV4, ServerV4, sal));
            }
        }

        return [.. cases.Select(c => (c.Item1, c.Item2))];
    }

    /// <summary>Recomputes the SAL checksum after an edit, so only the intended defect remains.</summary>
    private static byte[] Refill(byte[] sal)
    {
        sal[10] = 0;
        sal[11] = 0;
        var hl = Math.Min(sal[8] * 4, sal.Length);
        BinaryPrimitives.WriteUInt16BigEndian(sal.AsSpan(10), InternetChecksum.Compute(sal.AsSpan(0, hl)));
        return sal;
    }

    private static byte[] Sal(in SalPacketRepr p, byte[] payload, LinkAddress src, LinkAddress dst)
    {
        var buffer = new byte[p.GetLength(payload.Length)];
        Assert.Equal(buffer.Length, p.Emit(buffer, payload, TransportPseudoHeader.ForLink(src, dst)));
        return buffer;
    }

    /// <summary>A SAL packet with PAD, CONTROL, ADDRESS (12 bytes), PAD ×3 and a UDP datagram without checksum.</summary>
    private static byte[] PadAndAddress()
    {
        var p = new byte[12 + 1 + 20 + 12 + 3 + 8 + 4];
        BinaryPrimitives.WriteUInt32BigEndian(p, 0x01020304);
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(4), 0x05060708);
        p[8] = (12 + 1 + 20 + 12 + 3) / 4;
        p[9] = SalPacketRepr.ProtocolUdp;
        p[12] = 0x00;
        new SalControl(SalControlFlags.Rsyn | SalControlFlags.Fin, 77, 88, new Nonce(0xa1a2a3a4a5a6a7a8), Reserved: 0x5a).Emit(p.AsSpan(13));
        p[33] = 0x30;
        p[34] = 12;
        for (var i = 35; i < 45; i++)
        {
            p[i] = (byte)i;
        }

        var udp = p.AsSpan(48);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], 12);
        udp[8..].Fill(0xEE);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), InternetChecksum.Compute(p.AsSpan(0, 48)));
        return p;
    }

    /// <summary>A Register message of the control protocol (docs/control-protocol.md §3), 76 bytes.</summary>
    private static byte[] RegisterMessage()
    {
        var m = new byte[76];
        m[0] = 1; // version
        m[1] = 1; // Register
        m[2] = 0x04; // Refresh
        BinaryPrimitives.WriteUInt64BigEndian(m.AsSpan(4), 0x1122334455667788);
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(12), 42);
        BinaryPrimitives.WriteUInt64BigEndian(m.AsSpan(24), 1_700_000_000_000);
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(32), 1024);
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(36), 60000);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(40), 256);
        m[42] = 3;
        EchoService.WriteTo(m.AsSpan(44));
        return m;
    }

    /// <summary>A ResolveAck (Ok, Authenticated) with one IPv4 target and a MAC trailer of 0xAB bytes: 76 + 24 + 32 bytes.</summary>
    private static byte[] ResolveAckMessage()
    {
        var m = new byte[76 + 24 + 32];
        m[0] = 1;
        m[1] = 6; // ResolveAck
        m[2] = 0x01; // Authenticated
        BinaryPrimitives.WriteUInt64BigEndian(m.AsSpan(4), 0x1122334455667788);
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(12), 43);
        BinaryPrimitives.WriteUInt64BigEndian(m.AsSpan(16), 0x0102030405060708);
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(36), 30000);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(40), 32);
        m[42] = 1;
        ServiceId.FromNumber(16385).WriteTo(m.AsSpan(44));
        m[76] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(78), 54325);
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(80), 7);
        LinkAddress.Parse("198.51.100.9").WriteAddress(m.AsSpan(84));
        m.AsSpan(100).Fill(0xAB);
        return m;
    }

    private static byte[] Udp(LinkAddress src, LinkAddress dst, byte[] payload)
    {
        var udp = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(udp, (ushort)src.Port);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(2), (ushort)dst.Port);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(4), (ushort)udp.Length);
        payload.CopyTo(udp.AsSpan(8));
        UdpRepr.FillChecksum(udp, new TransportPseudoHeader(src.WithPort(0), dst.WithPort(0)));
        return Ip(src.WithPort(0), dst.WithPort(0), 17, udp);
    }

    private static byte[] Ip(LinkAddress src, LinkAddress dst, byte protocol, byte[] payload)
    {
        if (src.IsIPv6)
        {
            var frame6 = new byte[Ipv6Repr.HeaderLength + payload.Length];
            new Ipv6Repr { Source = src, Destination = dst, NextHeader = protocol, HopLimit = 64 }.Emit(frame6, payload.Length);
            payload.CopyTo(frame6.AsSpan(Ipv6Repr.HeaderLength));
            return frame6;
        }

        var frame = new byte[Ipv4Repr.MinHeaderLength + payload.Length];
        new Ipv4Repr { Source = src, Destination = dst, Protocol = protocol, Ttl = 64 }.Emit(frame, payload.Length);
        payload.CopyTo(frame.AsSpan(Ipv4Repr.MinHeaderLength));
        return frame;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // tshark
    // ---------------------------------------------------------------------------------------------------------------

    private static string? FindTshark()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "tshark");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static string ScriptPath
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "Wireshark", "serval.lua");
            Assert.True(File.Exists(path), $"the dissector was not copied to the test output: {path}");
            return path;
        }
    }

    /// <summary>Runs tshark with the dissector; returns frame number → field → value (all occurrences, comma-separated).</summary>
    private static Dictionary<int, Dictionary<string, string>> RunTshark(string tshark, string capture, string? names, string[]? fields = null, string[]? options = null)
    {
        fields ??= [.. Fields, .. ExpertFields];
        var psi = new ProcessStartInfo(tshark)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-n", "-X", "lua_script:" + ScriptPath, "-r", capture, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=/t", "-e", "frame.number" })
        {
            psi.ArgumentList.Add(arg);
        }

        if (names is not null)
        {
            psi.ArgumentList.Add("-o");
            psi.ArgumentList.Add("serval.names_file:" + names);
        }

        foreach (var option in options ?? [])
        {
            psi.ArgumentList.Add(option);
        }

        foreach (var field in fields)
        {
            psi.ArgumentList.Add("-e");
            psi.ArgumentList.Add(field);
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"tshark did not finish within 3 minutes on {capture}");
        }

        var output = stdout.GetAwaiter().GetResult();
        var error = stderr.GetAwaiter().GetResult();
        Assert.True(process.ExitCode == 0, $"tshark exited with {process.ExitCode}: {error}");
        Assert.DoesNotContain("Lua: Error", error, StringComparison.Ordinal);
        var rows = new Dictionary<int, Dictionary<string, string>>();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var cells = line.TrimEnd('\r').Split('\t');
            Assert.True(cells.Length == fields.Length + 1, $"tshark printed {cells.Length} columns, not {fields.Length + 1}: {line}");
            var row = new Dictionary<string, string>();
            for (var i = 0; i < fields.Length; i++)
            {
                row[fields[i]] = cells[i + 1];
            }

            rows[int.Parse(cells[0], CultureInfo.InvariantCulture)] = row;
        }

        return rows;
    }

    private sealed class TempDir : IDisposable
    {
        public TempDir()
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "serval-wireshark-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(Path);
        }

        public string Path { get; }

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
