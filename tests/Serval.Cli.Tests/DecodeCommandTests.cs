using System.Text.Json.Nodes;
using Serval.Wire;
using Serval.Wire.Pcap;

namespace Serval.Cli.Tests;

/// <summary><c>servalctl decode</c>: <c>--json</c>, <c>--hex</c>, <c>--flow</c>, <c>--service</c> and their errors.</summary>
public sealed class DecodeCommandTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("demo.echo");
    private static readonly ServiceId Other = ServiceId.FromName("other");

    [Fact]
    public void Json_prints_one_object_per_packet_with_every_field()
    {
        var text = CliResult.Run("decode");
        var result = CliResult.Run("decode", "--json");
        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = Lines(result.Output);
        Assert.Contains($"# {lines.Count} Serval packets in", text.Output, StringComparison.Ordinal);

        // The reference SYN (tcp_basic.pcap, frame 3).
        var syn = lines[0];
        Assert.Equal(3, (int)syn["frame"]!);
        Assert.Equal("10.202.1.1", (string)syn["source"]!);
        Assert.Equal("ip", (string)syn["encapsulation"]!);
        Assert.Equal(2u, (uint)syn["sourceFlow"]!);
        Assert.Equal(0u, (uint)syn["destinationFlow"]!);
        Assert.Equal(68, (int)syn["headerLength"]!);
        Assert.Equal("TCP", (string)syn["protocolName"]!);
        Assert.Equal(["CONTROL", "SERVICE"], syn["extensions"]!.AsArray().Select(e => (string)e!));
        Assert.Equal("SYN", (string)syn["control"]!["flags"]!);
        Assert.Equal(3408920861u, (uint)syn["control"]!["verno"]!);
        Assert.Equal("1b8a2cc0f4ca892d", (string)syn["control"]!["nonce"]!);
        Assert.Equal(ServiceId.FromNumber(16385).ToString(), (string)syn["destinationService"]!);
        Assert.False((bool)syn["controlOnly"]!);
        Assert.Equal(1448, (int)syn["tcp"]!["mss"]!);
        Assert.Equal(1, (int)syn["tcp"]!["windowScale"]!);
        Assert.True((bool)syn["tcp"]!["checksumOk"]!);
        Assert.Null(syn["hex"]);
        Assert.DoesNotContain("#", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Hex_dumps_each_packet_as_text_and_as_a_json_member()
    {
        var text = CliResult.Run("decode", "--hex");
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("  0000  00 00 00 02 00 00 00 00 11 06", text.Output, StringComparison.Ordinal);

        var json = Lines(CliResult.Run("decode", "--json", "--hex").Output);
        Assert.StartsWith("000000020000000011", (string)json[0]["hex"]!, StringComparison.Ordinal);
        Assert.All(json, o => Assert.Equal((int)o["length"]! * 2, ((string)o["hex"]!).Length));
    }

    [Fact]
    public void Flow_filter_keeps_packets_with_that_source_or_destination_flowID()
    {
        using var capture = new TwoFlows();
        var b = Lines(CliResult.Run("decode", capture.Path, "--json", "--flow", "11").Output);
        Assert.Equal([5u, 6u, 7u], b.Select(o => (uint)o["frame"]!));
        Assert.All(b, o => Assert.True((uint)o["sourceFlow"]! == 11 || (uint)o["destinationFlow"]! == 11));

        // Both flowIDs of A (0x hex too), and the malformed packet that carries flowID 10.
        var a = Lines(CliResult.Run("decode", capture.Path, "--json", "--flow", "0xa", "--flow", "20").Output);
        Assert.Equal(5, a.Count);
        Assert.Equal("BadSalChecksum", (string)a[^1]["malformed"]!);

        var none = CliResult.Run("decode", capture.Path, "--flow", "99");
        Assert.Equal(0, none.ExitCode);
        Assert.Contains("1 malformed, 0 shown", none.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("name")]
    [InlineData("id")]
    [InlineData("prefix")]
    public void Service_filter_follows_the_flows_a_named_packet_opens(string form)
    {
        var service = form switch
        {
            "name" => "demo.echo",
            "id" => Echo.ToString(),
            _ => "0x" + Echo.ToString()[..6] + "/24",
        };
        using var capture = new TwoFlows();
        var result = CliResult.Run("decode", capture.Path, "--json", "--service", service);
        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = Lines(result.Output);
        Assert.Equal([1u, 2u, 3u, 4u], lines.Select(o => (uint)o["frame"]!));
        Assert.Equal(Echo.ToString(), (string)lines[0]["destinationService"]!);

        var other = Lines(CliResult.Run("decode", capture.Path, "--json", "--service", "other").Output);
        Assert.Equal([5u, 6u, 7u], other.Select(o => (uint)o["frame"]!));

        // Both filters: packets of flowID 20 within the service's flows.
        var both = CliResult.Run("decode", capture.Path, "--service", service, "--flow", "20");
        Assert.Contains("# 8 Serval packets in 8 frames, 1 malformed, 3 shown", both.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--flow", "xyz", "malformed flowID 'xyz'")]
    [InlineData("--flow", "4294967296", "malformed flowID")]
    [InlineData("--service", "0xzz", "malformed serviceID")]
    [InlineData("--service", "0x10/300", "malformed serviceID")]
    [InlineData("--bogus", null, "--bogus")]
    public void Bad_arguments_are_usage_errors(string option, string? value, string message)
    {
        var result = value is null ? CliResult.Run("decode", option) : CliResult.Run("decode", option, value);
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains(message, result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_that_is_not_a_capture_fails_with_exit_1()
    {
        var path = System.IO.Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "this is not a pcap file at all");
            var result = CliResult.Run("decode", path, "--json");
            Assert.True(result.ExitCode == 1, result.ToString());
            Assert.StartsWith("servalctl decode: ", result.Error, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static List<JsonObject> Lines(string output) =>
        [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject())];

    /// <summary>
    /// Frames 1–4: flow A (SYN 10→0 to demo.echo, SYN-ACK 20→10, data both ways); 5–7: flow B (SYN 11→0 to
    /// "other", SYN-ACK 21→11, data); 8: a packet from flowID 10 with a bad SAL checksum. Raw IPv4, protocol 144.
    /// </summary>
    private sealed class TwoFlows : IDisposable
    {
        private static readonly LinkAddress Client = LinkAddress.Parse("192.0.2.1");
        private static readonly LinkAddress Server = LinkAddress.Parse("192.0.2.2");

        public TwoFlows()
        {
            Path = System.IO.Path.GetTempFileName();
            using var w = new PcapWriter(File.Create(Path), PcapLinkType.Raw);
            var time = 1_700_000_000_000_000_000L;
            void Write(LinkAddress src, LinkAddress dst, SalPacketRepr p)
            {
                var sal = new byte[p.GetLength(2)];
                p.Emit(sal, [1, 2], new TransportPseudoHeader(src, dst));
                var frame = new byte[20 + sal.Length];
                new Ipv4Repr { Source = src, Destination = dst, Protocol = 144, Ttl = 64 }.Emit(frame, sal.Length);
                sal.CopyTo(frame, 20);
                w.Write(time += 1_000_000, frame);
            }

            SalPacketRepr Packet(uint src, uint dst, SalControlFlags flags, ServiceId? service) => new()
            {
                SourceFlow = new FlowId(src),
                DestinationFlow = new FlowId(dst),
                Protocol = SalPacketRepr.ProtocolUdp,
                Control = flags == SalControlFlags.None ? null : new SalControl(flags, 1, 1, new Nonce(src)),
                DestinationService = service,
                Udp = new UdpRepr { HasChecksum = true },
            };

            Write(Client, Server, Packet(10, 0, SalControlFlags.Syn, Echo));
            Write(Server, Client, Packet(20, 10, SalControlFlags.Syn | SalControlFlags.Ack, null));
            Write(Client, Server, Packet(10, 20, SalControlFlags.None, null));
            Write(Server, Client, Packet(20, 10, SalControlFlags.None, null));
            Write(Client, Server, Packet(11, 0, SalControlFlags.Syn, Other));
            Write(Server, Client, Packet(21, 11, SalControlFlags.Syn | SalControlFlags.Ack, null));
            Write(Client, Server, Packet(11, 21, SalControlFlags.None, null));

            var bad = new byte[20 + 12 + 8 + 2];
            var sal = Packet(10, 20, SalControlFlags.None, null);
            sal.Emit(bad.AsSpan(20), [1, 2], new TransportPseudoHeader(Client, Server));
            bad[20 + 10] ^= 0xFF;
            new Ipv4Repr { Source = Client, Destination = Server, Protocol = 144, Ttl = 64 }.Emit(bad, bad.Length - 20);
            w.Write(time + 1_000_000, bad);
        }

        public string Path { get; }

        public void Dispose() => File.Delete(Path);
    }
}
