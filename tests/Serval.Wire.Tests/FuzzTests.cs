using System.Diagnostics;
using Serval.Testing;
using Serval.Wire;
using Serval.Wire.Pcap;
using Xunit;

namespace Serval.Wire.Tests;

/// <summary>
/// Parser fuzz (docs/testing.md): random and mutated packets fed to every parser entry point; nothing throws, and
/// whatever parses re-emits and re-parses to the same value. Seeded; <see cref="PacketFuzzer.ScaleVariable"/> scales it.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    /// <summary>The seed; a failure message repeats it with the packet's bytes.</summary>
    private const int Seed = 0x5E12_7A1;

    /// <summary>Packets per CI run (the live-engine fuzz in Serval.Stack.Tests feeds as many again).</summary>
    private const int DefaultPackets = 500_000;

    private static readonly TransportPseudoHeader V4 = new(LinkAddress.Parse("10.0.0.1"), LinkAddress.Parse("10.0.0.2"));
    private static readonly TransportPseudoHeader V6 = new(LinkAddress.Parse("fd00::1"), LinkAddress.Parse("fd00::2"));

    private readonly byte[] _emit1 = new byte[8192];
    private readonly byte[] _emit2 = new byte[8192];

    [Fact]
    public void Parsers_survive_random_and_mutated_packets_and_what_parses_round_trips()
    {
        var fuzzer = new PacketFuzzer(Seed);
        foreach (var name in new[] { "tcp_basic.pcap", "udp_basic.pcap", "sr_syn_a.pcap", "sr_syn_b.pcap", "migrate.pcap", "migrate_tcp.pcap" })
        {
            foreach (var r in PcapReader.ReadAll(File.OpenRead(CaptureTests.PathOf(name))))
            {
                if (SalFrame.TryLocate(r.LinkType, r.Data, out var f))
                {
                    fuzzer.Corpus.Add(r.Data.AsSpan(f.SalOffset, f.SalLength).ToArray());
                }
            }
        }

        Assert.NotEmpty(fuzzer.Corpus);
        var count = PacketFuzzer.Count(DefaultPackets);
        var stats = new Stats();
        var recent = new List<byte[]>();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            var pseudo = i % 5 == 0 ? V6 : V4;
            var packet = fuzzer.Next(pseudo);
            string? failure;
            try
            {
                failure = Check(packet, pseudo, stats);
            }
            catch (Exception e)
            {
                failure = e.ToString();
            }

            if (failure is not null)
            {
                Assert.Fail($"seed {Seed:x}, packet #{i} ({(i % 5 == 0 ? "v6" : "v4")} pseudo-header): {failure}\npacket: {PacketFuzzer.Hex(packet)}");
            }

            recent.Add(packet);
            if (recent.Count == 32)
            {
                CheckPcap(recent, fuzzer, i);
                stats.PcapFiles++;
                recent.Clear();
            }
        }

        clock.Stop();
        output.WriteLine(
            $"parser fuzz: {count:N0} packets in {clock.Elapsed.TotalSeconds:F1} s ({count / clock.Elapsed.TotalSeconds:N0}/s); " +
            $"SAL-parsed {stats.Parsed:N0}, transport checksum ok {stats.TransportOk:N0}, round-tripped {stats.RoundTrips:N0}, TCP-only round trips {stats.TcpRoundTrips:N0}, pcap files {stats.PcapFiles:N0}");

        // The mutations must reach the deep parsers, not only the checksum check.
        Assert.True(stats.Parsed > count / 10, $"only {stats.Parsed} of {count} parsed");
        Assert.True(stats.TransportOk > count / 20, $"only {stats.TransportOk} of {count} passed the transport checksum");
    }

    /// <summary>Feeds one packet to every entry point; returns why it failed, or null.</summary>
    private string? Check(byte[] packet, in TransportPseudoHeader pseudo, Stats stats)
    {
        if (SalPacketRepr.TryParse(packet, out var repr, out var offset, out var length, out _))
        {
            stats.Parsed++;
            if (offset < 0 || length < 0 || offset + length > packet.Length)
            {
                return $"payload [{offset}, +{length}) outside the packet of {packet.Length}";
            }

            if (SalPacketRepr.VerifyTransportChecksum(packet, pseudo))
            {
                stats.TransportOk++;
            }

            _ = SalPacketFormatter.Format(repr, length);
            if (RoundTrip(repr, packet.AsSpan(offset, length), pseudo) is { } why)
            {
                return $"round trip of {SalPacketFormatter.Format(repr, length)}: {why}";
            }

            stats.RoundTrips++;
        }
        else
        {
            _ = SalPacketRepr.VerifyTransportChecksum(packet, pseudo);
        }

        var hl = packet.Length >= 12 ? packet[8] * 4 : 0;
        var segment = hl >= 12 && hl <= packet.Length ? packet.AsSpan(hl) : packet.AsSpan();
        if (TcpRepr.TryParse(segment, out var tcp, out var th, out _))
        {
            if (th > segment.Length)
            {
                return $"TCP header length {th} beyond {segment.Length}";
            }

            if (TcpRoundTrip(tcp) is { } why)
            {
                return $"TCP round trip: {why}";
            }

            stats.TcpRoundTrips++;
        }

        if (UdpRepr.TryParse(segment, out _, out var ul, out _) && ul + UdpRepr.HeaderLength > segment.Length)
        {
            return $"UDP payload {ul} beyond {segment.Length}";
        }

        _ = UdpRepr.VerifyChecksum(segment, pseudo);
        _ = TcpRepr.TryParse(packet, out _, out _, out _);
        _ = Ipv4Repr.TryParse(packet, out _, out _, out _, out _);
        _ = Ipv6Repr.TryParse(packet, out _, out _, out _);
        var copy = (byte[])packet.Clone();
        _ = SalHeaderView.TryCreate(copy, out _, out _);
        _ = TcpHeaderView.TryCreate(copy.AsSpan(Math.Min(hl, copy.Length)), out _, out _);
        _ = SalFrame.TryLocate(PcapLinkType.Raw, packet, out _);
        _ = SalFrame.TryLocate(PcapLinkType.Ethernet, packet, out _);
        return null;
    }

    /// <summary>Emit, parse, emit again: the same value (SACK blocks that do not fit dropped) and the same bytes.</summary>
    private string? RoundTrip(in SalPacketRepr repr, ReadOnlySpan<byte> payload, in TransportPseudoHeader pseudo)
    {
        var n = repr.Emit(_emit1, payload, pseudo);
        if (n == 0)
        {
            return "does not re-emit";
        }

        var bytes = _emit1.AsSpan(0, n);
        if (!SalPacketRepr.TryParse(bytes, out var again, out var offset, out var length, out var error))
        {
            return $"re-emitted packet rejected ({error}): {PacketFuzzer.Hex(bytes)}";
        }

        if (!SalPacketRepr.VerifyTransportChecksum(bytes, pseudo))
        {
            return $"re-emitted packet fails its transport checksum: {PacketFuzzer.Hex(bytes)}";
        }

        if (!bytes.Slice(offset, length).SequenceEqual(payload))
        {
            return "payload differs after the round trip";
        }

        if (again.Tcp.SackBlocks.Count > repr.Tcp.SackBlocks.Count)
        {
            return "SACK blocks appeared";
        }

        var expected = repr with { Tcp = repr.Tcp with { SackBlocks = repr.Tcp.SackBlocks.Take(again.Tcp.SackBlocks.Count) } };
        if (again != expected)
        {
            return $"re-parsed as {SalPacketFormatter.Format(again, length)}";
        }

        var n2 = again.Emit(_emit2, bytes.Slice(offset, length), pseudo);
        return _emit2.AsSpan(0, n2).SequenceEqual(bytes) ? null : $"second emission differs: {PacketFuzzer.Hex(_emit2.AsSpan(0, n2))}";
    }

    private string? TcpRoundTrip(in TcpRepr tcp)
    {
        var n = tcp.Emit(_emit1);
        if (!TcpRepr.TryParse(_emit1.AsSpan(0, n), out var again, out var th, out var error))
        {
            return $"re-emitted header rejected ({error})";
        }

        if (th != n || again.HeaderLength != n)
        {
            return $"header length {th} / {again.HeaderLength}, emitted {n}";
        }

        var expected = tcp with { SackBlocks = tcp.SackBlocks.Take(again.SackBlocks.Count) };
        return again == expected ? null : $"re-parsed as {again}, expected {expected}";
    }

    /// <summary>Wraps packets in a raw-IP pcap, mutates the file sometimes, and reads it back.</summary>
    private static void CheckPcap(List<byte[]> packets, PacketFuzzer fuzzer, int index)
    {
        var ms = new MemoryStream();
        using (var w = new PcapWriter(ms, PcapLinkType.Raw, leaveOpen: true))
        {
            var buf = new byte[4096];
            foreach (var p in packets)
            {
                var ip = new Ipv4Repr { Source = V4.Source, Destination = V4.Destination, Protocol = 144, Ttl = 64 };
                var hl = ip.Emit(buf, p.Length);
                p.CopyTo(buf, hl);
                w.Write(index, buf.AsSpan(0, hl + p.Length));
            }
        }

        var file = ms.ToArray();
        if (fuzzer.Rng.Next(2) == 0)
        {
            file = fuzzer.Mutate(file);
        }

        try
        {
            using var r = new PcapReader(new MemoryStream(file));
            while (r.TryRead(out var rec))
            {
                if (SalFrame.TryLocate(rec.LinkType, rec.Data, out var f))
                {
                    _ = SalPacketRepr.TryParse(rec.Data.AsSpan(f.SalOffset, f.SalLength), out _, out _, out _, out _);
                }
            }
        }
        catch (InvalidDataException)
        {
            // The one exception a malformed file may raise.
        }
        catch (Exception e)
        {
            Assert.Fail($"seed {Seed:x}, pcap after packet #{index}: {e}\nfile: {PacketFuzzer.Hex(file)}");
        }
    }

    private sealed class Stats
    {
        public long Parsed { get; set; }

        public long TransportOk { get; set; }

        public long RoundTrips { get; set; }

        public long TcpRoundTrips { get; set; }

        public long PcapFiles { get; set; }
    }
}
