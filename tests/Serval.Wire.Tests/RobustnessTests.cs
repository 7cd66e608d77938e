using Serval.Testing;
using Serval.Wire;
using Serval.Wire.Pcap;
using Xunit;

namespace Serval.Wire.Tests;

/// <summary>No parser throws on arbitrary bytes: random strings and mutations of real captured packets.</summary>
public sealed class RobustnessTests
{
    private static readonly TransportPseudoHeader Pseudo = new(LinkAddress.Parse("10.0.0.1"), LinkAddress.Parse("10.0.0.2"));

    [Fact]
    public void Parsers_never_throw_on_random_and_mutated_input()
    {
        var seeds = new List<byte[]>();
        foreach (var name in new[] { "tcp_basic.pcap", "udp_basic.pcap", "sr_syn_b.pcap", "migrate.pcap" })
        {
            foreach (var r in PcapReader.ReadAll(File.OpenRead(CaptureTests.PathOf(name))))
            {
                if (SalFrame.TryLocate(r.LinkType, r.Data, out var f))
                {
                    seeds.Add(r.Data.AsSpan(f.SalOffset, f.SalLength).ToArray());
                }
            }
        }

        Assert.NotEmpty(seeds);
        var rng = new Random(12345);
        var accepted = 0;
        const int Iterations = 120_000;
        for (var i = 0; i < Iterations; i++)
        {
            byte[] input;
            if (i % 3 == 0)
            {
                input = new byte[rng.Next(0, 200)];
                rng.NextBytes(input);
                if (input.Length > 12 && i % 2 == 0)
                {
                    // Give random input a plausible header length so the extension walker is reached.
                    input[8] = (byte)rng.Next(3, (input.Length / 4) + 1);
                    PacketFuzzer.FixSalChecksum(input);
                }
            }
            else
            {
                input = Mutate(seeds[rng.Next(seeds.Count)], rng);
                if (i % 2 == 0)
                {
                    PacketFuzzer.FixSalChecksum(input);
                }
            }

            if (SalPacketRepr.TryParse(input, out var p, out var off, out var len, out _))
            {
                accepted++;
                Assert.InRange(off + len, 0, input.Length);
                _ = SalPacketRepr.VerifyTransportChecksum(input, Pseudo);
                _ = SalPacketFormatter.Format(p, len);
            }

            _ = TcpRepr.TryParse(input, out _, out _, out _);
            _ = UdpRepr.TryParse(input, out _, out _, out _);
            _ = Ipv4Repr.TryParse(input, out _, out _, out _, out _);
            _ = Ipv6Repr.TryParse(input, out _, out _, out _);
            _ = SalHeaderView.TryCreate(input, out _, out _);
            _ = TcpHeaderView.TryCreate(input, out _, out _);
            _ = SalFrame.TryLocate(PcapLinkType.Raw, input, out _);
            _ = SalFrame.TryLocate(PcapLinkType.Ethernet, input, out _);
        }

        // Mutations that keep the SAL checksum valid must still often parse: the test reaches deep code.
        Assert.True(accepted > 1000, $"only {accepted} inputs parsed");
    }

    [Fact]
    public void Pcap_reader_reports_bad_files_clearly()
    {
        var rng = new Random(7);
        var good = File.ReadAllBytes(CaptureTests.PathOf("udp_basic.pcap"));
        for (var i = 0; i < 2000; i++)
        {
            var bad = Mutate(good, rng);
            try
            {
                using var r = new PcapReader(new MemoryStream(bad));
                while (r.TryRead(out _))
                {
                }
            }
            catch (InvalidDataException)
            {
                // The one exception a malformed file may raise.
            }
        }

        var ex = Assert.Throws<InvalidDataException>(() => new PcapReader(new MemoryStream([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24])));
        Assert.Contains("magic", ex.Message, StringComparison.Ordinal);
    }

    private static byte[] Mutate(byte[] seed, Random rng)
    {
        var b = (byte[])seed.Clone();
        switch (rng.Next(4))
        {
            case 0:
                for (var k = rng.Next(1, 4); k > 0; k--)
                {
                    b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                }

                return b;
            case 1:
                b[rng.Next(b.Length)] = (byte)rng.Next(256);
                return b;
            case 2:
                return b[..rng.Next(b.Length)];
            default:
                var extra = new byte[rng.Next(1, 40)];
                rng.NextBytes(extra);
                var pos = rng.Next(b.Length);
                return [.. b[..pos], .. extra, .. b[pos..]];
        }
    }
}
