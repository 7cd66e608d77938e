using Serval.Wire;
using Serval.Wire.Pcap;
using Xunit;

namespace Serval.Wire.Tests;

public sealed class CaptureTests
{
    public static TheoryData<string> Captures => new(
        "tcp_basic.pcap", "udp_basic.pcap", "sr_syn_a.pcap", "sr_syn_b.pcap", "migrate.pcap", "migrate_tcp.pcap");

    internal static string PathOf(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", name);

    [Theory]
    [MemberData(nameof(Captures))]
    public void Every_serval_packet_parses_reemits_identically_and_verifies(string capture)
    {
        var records = PcapReader.ReadAll(File.OpenRead(PathOf(capture)));
        var count = 0;
        foreach (var rec in records)
        {
            if (!SalFrame.TryLocate(rec.LinkType, rec.Data, out var f))
            {
                continue;
            }

            count++;
            var sal = rec.Data.AsSpan(f.SalOffset, f.SalLength);
            Assert.True(SalPacketRepr.TryParse(sal, out var repr, out var payloadOffset, out var payloadLength, out var error), $"{capture} packet {count}: {error}");
            Assert.True(SalPacketRepr.VerifyTransportChecksum(sal, f.PseudoHeader), $"{capture} packet {count}: transport checksum");
            Assert.True(InternetChecksum.Verify(sal[..(sal[8] * 4)]));
            Assert.Equal(sal.Length, payloadOffset + payloadLength);

            var buffer = new byte[sal.Length + 16];
            buffer.AsSpan().Fill(0xA5);
            var n = repr.Emit(buffer, sal.Slice(payloadOffset, payloadLength), f.PseudoHeader);
            Assert.Equal(sal.Length, n);
            Assert.Equal(sal.ToArray(), buffer[..n]);
            Assert.All(buffer[n..], b => Assert.Equal(0xA5, b));

            // The IPv4 header re-emits identically too.
            var ip = rec.Data.AsSpan(f.IPOffset);
            Assert.True(Ipv4Repr.TryParse(ip, out var v4, out var ihl, out var ipLen, out _));
            var ipBuf = new byte[20];
            v4.Emit(ipBuf, ipLen);
            Assert.Equal(ip[..ihl].ToArray(), ipBuf);
        }

        Assert.True(count > 0, $"{capture} yielded no Serval packets");
    }

    [Fact]
    public void Capture_packet_counts_are_as_expected()
    {
        var total = 0;
        foreach (var name in new[] { "tcp_basic.pcap", "udp_basic.pcap", "sr_syn_a.pcap", "sr_syn_b.pcap", "migrate.pcap", "migrate_tcp.pcap" })
        {
            var n = PcapReader.ReadAll(File.OpenRead(PathOf(name))).Count(r => SalFrame.TryLocate(r.LinkType, r.Data, out _));
            Assert.True(n > 0, name);
            total += n;
        }

        Assert.True(total > 100, $"only {total} Serval packets in all captures");
    }

    [Fact]
    public void Reference_syn_has_expected_fields()
    {
        var rec = PcapReader.ReadAll(File.OpenRead(PathOf("tcp_basic.pcap"))).First(r => SalFrame.TryLocate(r.LinkType, r.Data, out _));
        Assert.True(SalFrame.TryLocate(rec.LinkType, rec.Data, out var f));
        Assert.True(SalPacketRepr.TryParse(rec.Data.AsSpan(f.SalOffset, f.SalLength), out var p, out _, out _, out _));
        Assert.Equal(new FlowId(2), p.SourceFlow);
        Assert.True(p.DestinationFlow.IsNone);
        Assert.Equal(SalControlFlags.Syn, p.Control!.Value.Flags);
        Assert.Equal(3408920861u, p.Control.Value.Verno);
        Assert.Equal(new Nonce(0x1b8a2cc0f4ca892dUL), p.Control.Value.Nonce);
        Assert.Equal(ServiceId.FromNumber(16385), p.DestinationService);
        Assert.Equal((ushort)1448, p.Tcp.MaxSegmentSize);
        Assert.Equal((byte)1, p.Tcp.WindowScale);
        Assert.False(p.Tcp.SackPermitted);
        Assert.Null(p.Tcp.Timestamp);
        Assert.Equal(TcpFlags.Syn, p.Tcp.Flags);
        Assert.Equal(LinkAddress.Parse("10.202.1.1"), f.Source);
    }

    [Fact]
    public void Forwarded_syn_carries_client_and_router_in_source()
    {
        var recs = PcapReader.ReadAll(File.OpenRead(PathOf("sr_syn_b.pcap")));
        var syn = recs.Select(r => (ok: SalFrame.TryLocate(r.LinkType, r.Data, out var f), f, r))
            .Where(x => x.ok)
            .Select(x => SalPacketRepr.TryParse(x.r.Data.AsSpan(x.f.SalOffset, x.f.SalLength), out var p, out _, out _, out _) ? p : default)
            .First(p => p.SourceRoute is not null && p.Control?.Flags == SalControlFlags.Syn);
        Assert.Equal("[10.202.2.1, 10.202.2.254]", syn.SourceRoute!.ToString());
        Assert.Equal(80, syn.SalHeaderLength);
    }
}
