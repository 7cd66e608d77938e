using System.Buffers.Binary;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// A service router forwards a first packet in its receive buffer (docs/engine.md, "Forwarding in place"): the bytes
/// it sends are those the re-emitting path sends for the same packet — IPv4 and IPv6, UDP-encapsulation and raw IP
/// links, with and without a SOURCE extension, datagrams and SYNs — with checksums that an independent computation
/// verifies, and forwarding allocates nothing.
/// </summary>
public sealed class InPlaceForwardingTests(ITestOutputHelper output)
{
    private static readonly ServiceId Target = ServiceId.FromName("inplace.target");
    private static readonly ServiceId Sender = ServiceId.FromName("inplace.sender");
    private const int Headroom = 64;

    private sealed record Sent(int Interface, LinkAddress Source, LinkAddress Destination, byte[] Packet, int HopLimit);

    private sealed class Capture : IPacketSink
    {
        public List<Sent> Packets { get; } = [];

        public void Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) =>
            Packets.Add(new Sent(interfaceIndex, source, destination, packet.ToArray(), hopLimit));
    }

    private sealed class Counter : IPacketSink
    {
        public long Count { get; private set; }

        public long Bytes { get; private set; }

        public void Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
        {
            Count++;
            Bytes += packet.Length;
        }
    }

    /// <summary>The addresses of one topology: client (or the previous router) -> router -> next hop.</summary>
    private sealed record Topology(bool V6, bool Udp)
    {
        private int Port => Udp ? 54325 : 0;

        private LinkAddress Ip(int net, int host) => V6
            ? LinkAddress.FromIPAddress(System.Net.IPAddress.Parse($"2001:db8:{net}::{host:x}"), Port)
            : LinkAddress.FromIPv4(0x0A000000u | ((uint)net << 8) | (uint)host, Port);

        public LinkAddress Client => Ip(0, 1);

        public LinkAddress Previous => Ip(0, 9);

        public LinkAddress RouterIn => Ip(0, 254);

        public LinkAddress RouterOut => Ip(1, 1);

        public LinkAddress NextHop => Ip(1, 254);

        public Stack.Engine CreateRouter()
        {
            var engine = new Stack.Engine(EngineOptions.Default with { Mode = EngineMode.ServiceRouter }, new SeededRandomSource(7));
            var a = engine.AddInterface(new InterfaceConfig { Name = "in", Address = RouterIn, RewritesSource = Udp });
            var b = engine.AddInterface(new InterfaceConfig { Name = "out", Address = RouterOut, RewritesSource = Udp });
            engine.SetInterfaceUp(a, true, TimeSpan.Zero);
            engine.SetInterfaceUp(b, true, TimeSpan.Zero);
            Assert.Equal(ServiceTableResult.Ok, engine.Services.Add(ServicePrefix.Exact(Target), ServiceTarget.Forward(NextHop, b)));
            return engine;
        }

        /// <summary>The link source the router sees: the client, or on UDP links the router before it when the packet has been forwarded once.</summary>
        public LinkAddress LinkSource(bool withSource) => withSource && Udp ? Previous : Client;
    }

    public enum Kind
    {
        Datagram,
        DatagramNoChecksum,
        Syn,
        Padded,
    }

    /// <summary>A first packet as a client (and, <paramref name="withSource"/>, a router before this one) sends it.</summary>
    private static byte[] Build(Topology t, Kind kind, bool withSource, int payloadLength)
    {
        var payload = new byte[payloadLength];
        for (var i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)(i * 7 + 3);
        }

        SalPacketRepr repr = kind == Kind.Syn
            ? new SalPacketRepr
            {
                SourceFlow = new FlowId(0x1234_5678),
                Protocol = SalPacketRepr.ProtocolTcp,
                Control = new SalControl(SalControlFlags.Syn, 1, 0, new Nonce(0x0102_0304_0506_0708)),
                DestinationService = Target,
                Tcp = new TcpRepr
                {
                    SequenceNumber = 1000,
                    Flags = TcpFlags.Syn,
                    Window = 65535,
                    MaxSegmentSize = 1440,
                    WindowScale = 7,
                    SackPermitted = true,
                    Timestamp = new TcpTimestamp(11, 0),
                },
            }
            : new SalPacketRepr
            {
                SourceFlow = new FlowId(0x0BAD_F00D),
                Protocol = SalPacketRepr.ProtocolUdp,
                DestinationService = Target,
                SourceService = Sender,
                Udp = new UdpRepr { HasChecksum = kind != Kind.DatagramNoChecksum },
            };
        if (withSource)
        {
            repr = repr with { SourceRoute = new SalSourceRoute([t.Client, t.Previous]) };
        }

        var buffer = new byte[2048];
        var n = repr.Emit(buffer, kind == Kind.Syn ? [] : payload, TransportPseudoHeader.ForLink(t.Client, t.RouterIn));
        Assert.True(n > 0);
        var packet = buffer.AsSpan(0, n).ToArray();
        if (kind != Kind.Padded)
        {
            return packet;
        }

        // Four PAD bytes at the end of the SAL header: a valid packet, but not one this stack emits.
        var sal = packet[8] * 4;
        var padded = new byte[n + 4];
        packet.AsSpan(0, sal).CopyTo(padded);
        packet.AsSpan(sal).CopyTo(padded.AsSpan(sal + 4));
        padded[8] = (byte)((sal + 4) / 4);
        padded[10] = 0;
        padded[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(padded.AsSpan(10), InternetChecksum.Compute(padded.AsSpan(0, sal + 4)));
        return padded;
    }

    public static TheoryData<bool, bool, Kind, bool> Cases()
    {
        var data = new TheoryData<bool, bool, Kind, bool>();
        foreach (var v6 in new[] { false, true })
        {
            foreach (var udp in new[] { true, false })
            {
                foreach (var kind in Enum.GetValues<Kind>())
                {
                    foreach (var withSource in new[] { false, true })
                    {
                        data.Add(v6, udp, kind, withSource);
                    }
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void In_place_forwarding_sends_the_bytes_the_re_emitting_path_sends(bool v6, bool udp, Kind kind, bool withSource)
    {
        var t = new Topology(v6, udp);
        foreach (var payloadLength in new[] { 0, 1, 48, 1000 })
        {
            var packet = Build(t, kind, withSource, payloadLength);
            var source = t.LinkSource(withSource);

            // The re-emitting path: a read-only span, the packet queued and sent on Poll.
            var old = t.CreateRouter();
            var oldSink = new Capture();
            old.Receive(1, source, t.RouterIn, packet, 64, TimeSpan.Zero);
            old.Poll(TimeSpan.Zero, oldSink);

            // In place: the packet behind headroom in a writable buffer, sent through the sink during Receive.
            var engine = t.CreateRouter();
            var sink = new Capture();
            var buffer = new byte[Headroom + packet.Length + 16];
            Random.Shared.NextBytes(buffer);
            packet.CopyTo(buffer.AsSpan(Headroom));
            engine.Receive(1, source, t.RouterIn, buffer, Headroom, packet.Length, 64, TimeSpan.Zero, sink);
            var sentDuringReceive = sink.Packets.Count;
            engine.Poll(TimeSpan.Zero, sink);

            var what = $"v6={v6} udp={udp} {kind} source={withSource} payload={payloadLength}";
            Assert.True(oldSink.Packets.Count == 1, $"{what}: the re-emitting path sent {oldSink.Packets.Count} packets (counters: loops {old.Counters.ForwardLoops}, malformed {old.Counters.Malformed})");
            Assert.True(sink.Packets.Count == 1, $"{what}: the in-place path sent {sink.Packets.Count} packets");
            var expected = oldSink.Packets[0];
            var actual = sink.Packets[0];
            Assert.True(expected.Packet.AsSpan().SequenceEqual(actual.Packet), $"{what}:\n old {Convert.ToHexString(expected.Packet)}\n new {Convert.ToHexString(actual.Packet)}");
            Assert.Equal(expected with { Packet = [] }, actual with { Packet = [] });
            Assert.Equal(63, actual.HopLimit);

            var inPlace = kind != Kind.Padded;
            Assert.True(engine.Counters.ForwardedInPlace == (inPlace ? 1 : 0), $"{what}: ForwardedInPlace {engine.Counters.ForwardedInPlace}");
            Assert.True(engine.Counters.ForwardReemitted == (inPlace ? 0 : 1), $"{what}: ForwardReemitted {engine.Counters.ForwardReemitted}");
            Assert.True(sentDuringReceive == (inPlace ? 1 : 0), $"{what}: {sentDuringReceive} packets sent during Receive");
            Assert.Equal(1, engine.Counters.Forwarded);

            IndependentCheck.Verify(actual.Packet, actual.Source, actual.Destination, t.Client, t.RouterIn, what);
        }
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void Forwarding_in_place_allocates_nothing(bool v6, bool udp)
    {
        var t = new Topology(v6, udp);
        var engine = t.CreateRouter();
        var sink = new Counter();
        var packet = Build(t, Kind.Datagram, withSource: false, 48);
        var buffer = new byte[Headroom + packet.Length];
        var now = TimeSpan.Zero;
        var (client, routerIn) = (t.Client, t.RouterIn); // the topology's properties parse IPv6 text (allocates)

        void Loop(int count)
        {
            for (var i = 0; i < count; i++)
            {
                packet.CopyTo(buffer, Headroom);
                engine.Receive(1, client, routerIn, buffer, Headroom, packet.Length, 64, now, sink);
                engine.Poll(now, sink);
                now += TimeSpan.FromMicroseconds(1);
            }
        }

        Loop(10_000); // warm-up: the service table's counters, the JIT
        const int measured = 100_000;
        var before = GC.GetAllocatedBytesForCurrentThread();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        Loop(measured);
        var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        output.WriteLine($"v6={v6} udp={udp}: {measured} forwarded, {allocated} bytes allocated, {elapsed.TotalNanoseconds / measured:F0} ns per packet");
        Assert.True(sink.Count == measured + 10_000, $"sent {sink.Count} of {measured + 10_000} (in place {engine.Counters.ForwardedInPlace}, re-emitted {engine.Counters.ForwardReemitted})");
        Assert.True(engine.Counters.ForwardedInPlace == measured + 10_000, $"in place {engine.Counters.ForwardedInPlace} of {measured + 10_000}");
        Assert.True(allocated == 0, $"{allocated} bytes allocated for {measured} forwarded packets");
    }

    /// <summary>
    /// Checksums computed here from the RFC 1071 definition, not with Serval.Wire: the SAL checksum over the SAL
    /// header, and the transport checksum over the pseudo-header the receiver uses (docs/protocol.md §9: the link
    /// addresses on raw IP, unspecified addresses on UDP encapsulation, where the client's SOURCE[0] is the source).
    /// </summary>
    private static class IndependentCheck
    {
        private static uint Sum(ReadOnlySpan<byte> data, uint sum = 0)
        {
            for (var i = 0; i + 1 < data.Length; i += 2)
            {
                sum += (uint)((data[i] << 8) | data[i + 1]);
            }

            if ((data.Length & 1) != 0)
            {
                sum += (uint)(data[^1] << 8);
            }

            return sum;
        }

        private static ushort Fold(uint sum)
        {
            while (sum > 0xFFFF)
            {
                sum = (sum & 0xFFFF) + (sum >> 16);
            }

            return (ushort)sum;
        }

        public static void Verify(byte[] packet, LinkAddress source, LinkAddress destination, LinkAddress client, LinkAddress routerIn, string what)
        {
            var sal = packet[8] * 4;
            Assert.True(Fold(Sum(packet.AsSpan(0, sal))) == 0xFFFF, $"{what}: SAL checksum does not verify");

            // SOURCE extension: [client, ..., router-in], last added by this router.
            var alen = client.IsIPv6 ? 16 : 4;
            var found = false;
            for (var o = 12; o < sal; o += packet[o + 1])
            {
                if (packet[o] >> 4 is 4 or 5)
                {
                    var n = (packet[o + 1] - 4) / alen;
                    Span<byte> a = stackalloc byte[16];
                    client.WriteAddress(a);
                    Assert.True(packet.AsSpan(o + 4, alen).SequenceEqual(a[..alen]), $"{what}: SOURCE[0] is not the client");
                    routerIn.WriteAddress(a);
                    Assert.True(packet.AsSpan(o + 4 + ((n - 1) * alen), alen).SequenceEqual(a[..alen]), $"{what}: SOURCE[last] is not the router");
                    found = true;
                    break;
                }
            }

            Assert.True(found, $"{what}: no SOURCE extension");
            var segment = packet.AsSpan(sal);
            if (segment.IsEmpty || (packet[9] == 17 && BinaryPrimitives.ReadUInt16BigEndian(segment[6..]) == 0))
            {
                return;
            }

            Span<byte> pseudo = stackalloc byte[40];
            pseudo.Clear();
            var udp = source.Port != 0 || destination.Port != 0;
            var pl = client.IsIPv6 ? 16 : 4;
            if (!udp)
            {
                source.WriteAddress(pseudo);
                destination.WriteAddress(pseudo[pl..]);
            }

            var sum = Sum(pseudo[..(2 * pl)]) + packet[9] + (uint)segment.Length;
            Assert.True(Fold(Sum(segment, sum)) == 0xFFFF, $"{what}: transport checksum does not verify");
        }
    }
}
