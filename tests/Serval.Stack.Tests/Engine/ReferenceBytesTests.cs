using Serval.Simulation;
using Serval.Stack;
using Serval.Stack.Streams;
using Serval.Wire;
using Serval.Wire.Pcap;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// The engine's handshake packets, with the reference run's random values (flowIDs, nonces, vernos, sequence
/// numbers, window) substituted, are byte-identical to the reference implementation's captures.
/// </summary>
public sealed class ReferenceBytesTests
{
    private static readonly ServiceId RefService = ServiceId.FromNumber(16385);

    private static List<(SalFrame Frame, byte[] Sal, SalPacketRepr Packet)> Load(string name) =>
        [.. PcapReader.ReadAll(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "TestData", name)))
            .Select(r => (ok: SalFrame.TryLocate(r.LinkType, r.Data, out var f), f, r))
            .Where(x => x.ok)
            .Select(x =>
            {
                var sal = x.r.Data.AsSpan(x.f.SalOffset, x.f.SalLength).ToArray();
                Assert.True(SalPacketRepr.TryParse(sal, out var p, out _, out _, out _));
                return (x.f, sal, p);
            })];

    private sealed record Captured(SimHost Sender, LinkAddress Source, LinkAddress Destination, byte[] Bytes);

    private static List<Captured> Record(SimLink link)
    {
        var list = new List<Captured>();
        link.Observer = (time, sender, src, dst, bytes) => list.Add(new Captured(sender, src, dst, bytes));
        return list;
    }

    /// <summary>Substitutes the reference's random values into ours, then compares values and bytes.</summary>
    private static void AssertMatches(Captured ours, (SalFrame Frame, byte[] Sal, SalPacketRepr Packet) reference, string what)
    {
        Assert.True(SalPacketRepr.TryParse(ours.Bytes, out var p, out var off, out var len, out _));
        var r = reference.Packet;
        var substituted = p with
        {
            SourceFlow = r.SourceFlow,
            DestinationFlow = r.DestinationFlow,
            Control = p.Control is { } c && r.Control is { } rc ? c with { Verno = rc.Verno, Ackno = rc.Ackno, Nonce = rc.Nonce } : p.Control,
            Tcp = p.Protocol == 6
                ? p.Tcp with { SequenceNumber = r.Tcp.SequenceNumber, AckNumber = r.Tcp.AckNumber, Window = r.Tcp.Window, WindowScale = p.Tcp.WindowScale.HasValue ? r.Tcp.WindowScale : null }
                : p.Tcp,
        };
        Assert.True(substituted == r, $"{what}: ours {SalPacketFormatter.Format(substituted, len)}\n reference {SalPacketFormatter.Format(r, 0)}");
        var buf = new byte[reference.Sal.Length];
        var n = substituted.Emit(buf, ours.Bytes.AsSpan(off, len), reference.Frame.PseudoHeader);
        Assert.Equal(reference.Sal.Length, n);
        Assert.Equal(reference.Sal, buf);
    }

    [Fact]
    public void Connected_datagram_handshake_matches_udp_basic()
    {
        var reference = Load("udp_basic.pcap");
        var refSyn = reference.First(x => x.Packet.Control?.Flags == SalControlFlags.Syn);
        var refSynAck = reference.First(x => x.Packet.Control?.Flags == (SalControlFlags.Syn | SalControlFlags.Ack));
        var refAck = reference.First(x => x.Packet.Control?.Flags == SalControlFlags.Ack && x.Packet.DestinationService is not null);

        var net = new SimulatedNetwork(21);
        var link = net.AddLink("br", LinkConditions.Perfect with { Mtu = 1480 });
        var a = net.AddHost("A");
        var b = net.AddHost("B");
        var ai = a.Attach(link, LinkAddress.Parse("10.202.1.1"));
        b.Attach(link, LinkAddress.Parse("10.202.1.2"));
        a.AddForward(ServicePrefix.Default, LinkAddress.Parse("10.202.1.2"), ai);
        var trace = Record(link);
        b.Listen(RefService, TransportProtocol.Datagram);
        var c = a.Connect(RefService, TransportProtocol.Datagram);
        Assert.True(net.RunUntil(() => a.IsConnected(c), TimeSpan.FromSeconds(1)));
        net.RunFor(TimeSpan.FromMilliseconds(10));

        AssertMatches(trace[0], refSyn, "SYN");
        AssertMatches(trace[1], refSynAck, "SYN-ACK");
        AssertMatches(trace[2], refAck, "ACK");
    }

    [Fact]
    public void Stream_syn_forwarded_syn_and_synack_match_sr_syn_captures()
    {
        var linkA = Load("sr_syn_a.pcap");
        var linkB = Load("sr_syn_b.pcap");
        var refSyn = linkA.First(x => x.Packet.Control?.Flags == SalControlFlags.Syn);
        var refForwarded = linkB.First(x => x.Packet.Control?.Flags == SalControlFlags.Syn);
        var refSynAck = linkB.First(x => x.Packet.Control?.Flags == (SalControlFlags.Syn | SalControlFlags.Ack));

        var net = new SimulatedNetwork(22);
        var la = net.AddLink("A-R", LinkConditions.Perfect with { Mtu = 1480 });
        var lb = net.AddLink("R-B", LinkConditions.Perfect with { Mtu = 1480 });
        var a = net.AddHost("A");
        var r = net.AddHost("R", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
        var b = net.AddHost("B");
        foreach (var h in new[] { a, b })
        {
            // The reference's TCP offers MSS and window scale only.
            h.Engine.StreamOptions = StreamOptions.Default with { UseSack = false, UseTimestamps = false };
        }

        var ai = a.Attach(la, LinkAddress.Parse("10.202.2.1"));
        r.Attach(la, LinkAddress.Parse("10.202.2.254"));
        var rb = r.Attach(lb, LinkAddress.Parse("10.202.3.254"));
        var bi = b.Attach(lb, LinkAddress.Parse("10.202.3.1"));

        // Replies go straight to A: B's link reaches A's subnet through R's IP routing in the reference setup; here a
        // host route on B's link stands in for that (the simulator delivers to A when A is attached to it too).
        a.Attach(lb, LinkAddress.Parse("10.202.2.1"));
        a.AddForward(ServicePrefix.Default, LinkAddress.Parse("10.202.2.254"), ai);
        r.AddForward(ServicePrefix.Exact(RefService), LinkAddress.Parse("10.202.3.1"), rb);
        var traceA = Record(la);
        var traceB = Record(lb);
        b.Listen(RefService);
        var c = a.Connect(RefService);
        Assert.True(net.RunUntil(() => a.IsConnected(c), TimeSpan.FromSeconds(1)));
        _ = bi;

        AssertMatches(traceA.First(x => x.Sender == a), refSyn, "SYN A→R");
        AssertMatches(traceB.First(x => x.Sender == r), refForwarded, "SYN R→B");
        AssertMatches(traceB.First(x => x.Sender == b), refSynAck, "SYN-ACK B→A");
        Assert.Equal(LinkAddress.Parse("10.202.2.1"), traceB.First(x => x.Sender == r).Source); // IP source kept
    }
}
