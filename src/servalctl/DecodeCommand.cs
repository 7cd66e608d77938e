using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serval.Wire;
using Serval.Wire.Pcap;

namespace Serval.Cli;

/// <summary>What <c>servalctl decode</c> prints and which packets it keeps.</summary>
/// <param name="Json">One JSON object per packet (JSON Lines) instead of text.</param>
/// <param name="Hex">A hex dump of each SAL packet alongside its decoding.</param>
/// <param name="Flows">Keep packets whose source or destination flowID is one of these (empty: no flow filter).</param>
/// <param name="Service">Keep packets that name a serviceID of this prefix, and the later packets of the flows they open.</param>
internal sealed record DecodeOptions(bool Json = false, bool Hex = false, IReadOnlyList<uint>? Flows = null, ServicePrefix? Service = null)
{
    public bool Filtered => Flows is { Count: > 0 } || Service.HasValue;
}

/// <summary><c>servalctl decode [FILE]</c>: prints every Serval packet of a capture in readable form or as JSON.</summary>
internal static class DecodeCommand
{
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly string[] s_extensionNames = ["PAD", "CONTROL", "SERVICE", "ADDRESS", "SOURCE", "SOURCE6", "PATH"];

    public static int Run(string? path, TextWriter output, TextWriter error) => Run(path, new DecodeOptions(), output, error);

    public static int Run(string? path, DecodeOptions options, TextWriter output, TextWriter error)
    {
        Stream stream;
        string name;
        if (path is null)
        {
            stream = typeof(DecodeCommand).Assembly.GetManifestResourceStream("sample.pcap")
                ?? throw new InvalidOperationException("The embedded sample capture is missing from this build.");
            name = "embedded sample (reference stream transfer, tcp_basic.pcap)";
        }
        else
        {
            if (!File.Exists(path))
            {
                error.WriteLine($"servalctl decode: no such file: {path}");
                return 1;
            }

            stream = File.OpenRead(path);
            name = path;
        }

        using var reader = CreateReader(stream, path, error);
        if (reader is null)
        {
            return 1;
        }

        if (!options.Json)
        {
            output.WriteLine($"# {name}");
        }

        var frame = 0;
        var serval = 0;
        var bad = 0;
        var shown = 0;
        long first = -1;
        var followed = new HashSet<(LinkAddress, uint)>();
        try
        {
            while (reader.TryRead(out var rec))
            {
                frame++;
                if (!SalFrame.TryLocate(rec.LinkType, rec.Data, out var f))
                {
                    continue;
                }

                serval++;
                if (first < 0)
                {
                    first = rec.Timestamp;
                }

                var t = (rec.Timestamp - first) / 1e9;
                var sal = rec.Data.AsSpan(f.SalOffset, f.SalLength);
                var parsed = SalPacketRepr.TryParse(sal, out var p, out _, out var payloadLength, out var why);
                if (!parsed)
                {
                    bad++;
                }

                if (!Keep(options, sal, parsed, p, f, followed))
                {
                    continue;
                }

                shown++;
                var ok = parsed && SalPacketRepr.VerifyTransportChecksum(sal, f.PseudoHeader);
                if (options.Json)
                {
                    var json = ToJson(frame, rec.Timestamp, t, f, sal, parsed, p, payloadLength, ok, why);
                    if (options.Hex)
                    {
                        json["hex"] = Convert.ToHexStringLower(sal);
                    }

                    output.WriteLine(json.ToJsonString(s_json));
                    continue;
                }

                var encap = f.UdpEncapsulated ? " udp" : string.Empty;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"#{frame} {t:F6}s {f.Source} -> {f.Destination}{encap} ttl={f.Ttl} len={f.SalLength}"));
                if (parsed)
                {
                    output.WriteLine("  " + SalPacketFormatter.Format(p, payloadLength, ok).Replace("\n", "\n  ", StringComparison.Ordinal));
                }
                else
                {
                    output.WriteLine($"  malformed SAL packet: {why}");
                }

                if (options.Hex)
                {
                    output.Write(HexDump(sal, "  "));
                }
            }
        }
        catch (InvalidDataException e)
        {
            error.WriteLine($"servalctl decode: {e.Message}");
            return 1;
        }

        if (!options.Json)
        {
            var filtered = options.Filtered ? $", {shown} shown" : string.Empty;
            output.WriteLine($"# {serval} Serval packets in {frame} frames, {bad} malformed{filtered}");
        }

        return 0;
    }

    /// <summary>
    /// The filters: <c>--flow</c> matches either flowID; <c>--service</c> matches a SERVICE extension in the prefix and
    /// then follows the flows such a packet opens, by (address, flowID) of either end, through the whole exchange.
    /// </summary>
    private static bool Keep(DecodeOptions options, ReadOnlySpan<byte> sal, bool parsed, in SalPacketRepr p, in SalFrame f, HashSet<(LinkAddress, uint)> followed)
    {
        // The service filter first: it follows flows, so it must see every packet, also those the flow filter drops.
        if (options.Service is { } prefix && !(parsed && InService(prefix, p, f, followed)))
        {
            return false;
        }

        if (options.Flows is not { Count: > 0 } flows)
        {
            return true;
        }

        if (sal.Length < 8)
        {
            return false;
        }

        return flows.Contains(BinaryPrimitives.ReadUInt32BigEndian(sal)) || flows.Contains(BinaryPrimitives.ReadUInt32BigEndian(sal[4..]));
    }

    private static bool InService(ServicePrefix prefix, in SalPacketRepr p, in SalFrame f, HashSet<(LinkAddress, uint)> followed)
    {
        var source = (f.Source.WithPort(0), p.SourceFlow.Value);
        var destination = (f.Destination.WithPort(0), p.DestinationFlow.Value);
        var named = (p.DestinationService is { } d && prefix.Contains(d)) || (p.SourceService is { } s && prefix.Contains(s));
        var known = (source.Value != 0 && followed.Contains(source)) || (destination.Value != 0 && followed.Contains(destination));
        if (!named && !known)
        {
            return false;
        }

        // Remember both ends (a SYN's destination flowID is 0: the answer brings the server's). A migrated flow keeps
        // matching through its unchanged end and is then followed from its new address as well. A forwarded SYN's
        // client is SOURCE[0], where the answer goes.
        if (source.Value != 0)
        {
            followed.Add(source);
            if (p.SourceRoute is { } route)
            {
                followed.Add((route.First, source.Value));
            }
        }

        if (destination.Value != 0)
        {
            followed.Add(destination);
        }

        return true;
    }

    private static JsonObject ToJson(int frame, long timestamp, double relative, in SalFrame f, ReadOnlySpan<byte> sal, bool parsed, in SalPacketRepr p, int payloadLength, bool transportOk, WireError why)
    {
        var o = new JsonObject
        {
            ["frame"] = frame,
            ["time"] = Math.Round(relative, 9),
            ["timestamp"] = DateTimeOffset.UnixEpoch.AddTicks(timestamp / 100).ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture),
            ["source"] = f.Source.ToString(),
            ["destination"] = f.Destination.ToString(),
            ["encapsulation"] = f.UdpEncapsulated ? "udp" : "ip",
            ["ttl"] = f.Ttl,
            ["length"] = f.SalLength,
        };
        if (!parsed)
        {
            o["malformed"] = why.ToString();
            if (sal.Length >= 8)
            {
                o["sourceFlow"] = BinaryPrimitives.ReadUInt32BigEndian(sal);
                o["destinationFlow"] = BinaryPrimitives.ReadUInt32BigEndian(sal[4..]);
            }

            return o;
        }

        var hl = sal[8] * 4;
        o["sourceFlow"] = p.SourceFlow.Value;
        o["destinationFlow"] = p.DestinationFlow.Value;
        o["headerLength"] = hl;
        o["protocol"] = p.Protocol;
        o["protocolName"] = p.Protocol == SalPacketRepr.ProtocolTcp ? "TCP" : "UDP";
        o["checksum"] = Hex16(BinaryPrimitives.ReadUInt16BigEndian(sal[10..]));
        o["extensions"] = new JsonArray([.. ExtensionTypes(sal[12..hl]).Select(t => (JsonNode)s_extensionNames[t])]);
        if (p.Control is { } c)
        {
            o["control"] = new JsonObject
            {
                ["flags"] = SalControl.FlagsText(c.Flags),
                ["flagsValue"] = (byte)c.Flags,
                ["reserved"] = c.Reserved,
                ["verno"] = c.Verno,
                ["ackno"] = c.Ackno,
                ["nonce"] = c.Nonce.ToString(),
            };
        }

        if (p.DestinationService is { } d)
        {
            o["destinationService"] = d.ToString();
        }

        if (p.SourceService is { } s)
        {
            o["sourceService"] = s.ToString();
        }

        if (p.SourceRoute is { } r)
        {
            var list = new JsonArray();
            foreach (var a in r.Addresses)
            {
                list.Add(a.ToString());
            }

            o["sourceRoute"] = new JsonObject { ["family"] = r.IsIPv6 ? "IPv6" : "IPv4", ["addresses"] = list };
        }

        if (p.PathProbe is { } probe)
        {
            o["path"] = new JsonObject { ["response"] = probe.IsResponse, ["challenge"] = probe.Challenge.ToString("x16", CultureInfo.InvariantCulture) };
        }

        o["controlOnly"] = p.ControlOnly;
        if (p.ControlOnly)
        {
            return o;
        }

        var segment = sal[hl..];
        if (p.Protocol == SalPacketRepr.ProtocolTcp)
        {
            var t = p.Tcp;
            var tcp = new JsonObject
            {
                ["seq"] = t.SequenceNumber,
                ["ack"] = t.AckNumber,
                ["headerLength"] = (segment[12] >> 4) * 4,
                ["flags"] = SalPacketFormatter.TcpFlagsText(t.Flags),
                ["flagsValue"] = (ushort)t.Flags,
                ["window"] = t.Window,
                ["checksum"] = Hex16(BinaryPrimitives.ReadUInt16BigEndian(segment[16..])),
                ["checksumOk"] = transportOk,
                ["urgent"] = t.UrgentPointer,
            };
            if (t.MaxSegmentSize is { } mss)
            {
                tcp["mss"] = mss;
            }

            if (t.WindowScale is { } ws)
            {
                tcp["windowScale"] = ws;
            }

            tcp["sackPermitted"] = t.SackPermitted;
            if (t.Timestamp is { } ts)
            {
                tcp["timestamp"] = new JsonObject { ["value"] = ts.Value, ["echo"] = ts.EchoReply };
            }

            if (t.SackBlocks.Count > 0)
            {
                var blocks = new JsonArray();
                for (var i = 0; i < t.SackBlocks.Count; i++)
                {
                    blocks.Add(new JsonArray(t.SackBlocks[i].Left, t.SackBlocks[i].Right));
                }

                tcp["sack"] = blocks;
            }

            tcp["payloadLength"] = payloadLength;
            o["tcp"] = tcp;
        }
        else
        {
            var checksum = BinaryPrimitives.ReadUInt16BigEndian(segment[6..]);
            o["udp"] = new JsonObject
            {
                ["length"] = BinaryPrimitives.ReadUInt16BigEndian(segment[4..]),
                ["checksum"] = Hex16(checksum),
                ["checksumOk"] = checksum == 0 ? null : (JsonNode)transportOk,
                ["payloadLength"] = payloadLength,
            };
        }

        return o;
    }

    private static string Hex16(ushort value) => "0x" + value.ToString("x4", CultureInfo.InvariantCulture);

    /// <summary>The type of every extension in a parsed packet's extension area, PAD included.</summary>
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

    /// <summary>16 bytes a line: offset, hex bytes, and the printable ASCII characters.</summary>
    internal static string HexDump(ReadOnlySpan<byte> data, string indent)
    {
        var sb = new StringBuilder();
        for (var o = 0; o < data.Length; o += 16)
        {
            var line = data.Slice(o, Math.Min(16, data.Length - o));
            sb.Append(indent).Append(o.ToString("x4", CultureInfo.InvariantCulture)).Append(' ');
            for (var i = 0; i < 16; i++)
            {
                sb.Append(i < line.Length ? " " + line[i].ToString("x2", CultureInfo.InvariantCulture) : "   ");
            }

            sb.Append("  ");
            foreach (var b in line)
            {
                sb.Append(b is >= 0x20 and < 0x7F ? (char)b : '.');
            }

            sb.Append('\n');
        }

        return sb.ToString();
    }

    private static PcapReader? CreateReader(Stream stream, string? path, TextWriter error)
    {
        try
        {
            return new PcapReader(stream);
        }
        catch (InvalidDataException e)
        {
            stream.Dispose();
            error.WriteLine($"servalctl decode: {path}: {e.Message}");
            return null;
        }
    }
}
