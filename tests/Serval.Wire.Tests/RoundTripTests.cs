using FsCheck;
using FsCheck.Fluent;
using Serval.Wire;
using Xunit;

namespace Serval.Wire.Tests;

public sealed class RoundTripTests
{
    private static readonly Config Config = Config.QuickThrowOnFailure.WithMaxTest(2000);

    private static readonly TransportPseudoHeader V4Pseudo = new(LinkAddress.Parse("10.0.0.1"), LinkAddress.Parse("10.0.0.2"));

    [Fact]
    public void ServiceId_text_forms_round_trip() =>
        Check.One(Config, Prop.ForAll(Generators.ServiceIds.ToArbitrary(), id =>
            ServiceId.Parse(id.ToString()) == id
            && ServiceId.Parse(id.ToString("X", null)) == id
            && ServiceId.Parse(id.ToString("s", null)) == id
            && new ServiceId(id.ToArray()) == id));

    [Fact]
    public void ServicePrefix_text_round_trips_and_is_canonical() =>
        Check.One(Config, Prop.ForAll(Generators.ServiceIds.ToArbitrary(), Gen.Choose(0, 256).ToArbitrary(), (id, bits) =>
        {
            var p = new ServicePrefix(id, bits);
            return ServicePrefix.Parse(p.ToString()) == p
                && p.Contains(id)
                && p.Id.Truncate(bits) == p.Id
                && (bits == 256 || !p.Id.GetBitsOrZero(bits));
        }));

    [Fact]
    public void Tcp_header_emit_then_parse_is_identity() =>
        Check.One(Config, Prop.ForAll(Generators.Tcps.ToArbitrary(), t =>
        {
            var buf = new byte[60];
            var n = t.Emit(buf);
            return n == t.HeaderLength && TcpRepr.TryParse(buf.AsSpan(0, n), out var back, out var hl, out _) && hl == n && back == t;
        }));

    [Fact]
    public void Whole_packet_emit_then_parse_is_identity() =>
        Check.One(Config, Prop.ForAll(Generators.Packets.ToArbitrary(), Gen.Choose(0, 64).ToArbitrary(), (p, payloadLength) =>
        {
            var payload = p.ControlOnly ? [] : Enumerable.Range(0, payloadLength).Select(i => (byte)(i * 7)).ToArray();
            var buf = new byte[2048];
            var n = p.Emit(buf, payload, V4Pseudo);
            var packet = buf.AsSpan(0, n);
            return n == p.GetLength(payload.Length)
                && SalPacketRepr.TryParse(packet, out var back, out var off, out var len, out _)
                && back == p
                && packet.Slice(off, len).SequenceEqual(payload)
                && SalPacketRepr.VerifyTransportChecksum(packet, V4Pseudo);
        }));

    [Fact]
    public void Ipv4_and_ipv6_headers_round_trip() =>
        Check.One(Config, Prop.ForAll(Generators.V4.ToArbitrary(), Generators.V6.ToArbitrary(), Generators.UInt16.ToArbitrary(), (a, b, id) =>
        {
            var v4 = new Ipv4Repr { Source = a, Destination = a, Protocol = 144, Ttl = 64, Identification = id, DontFragment = true };
            var v6 = new Ipv6Repr { Source = b, Destination = b, NextHeader = 144, HopLimit = 3, TrafficClass = 5, FlowLabel = id };
            var buf = new byte[100];
            v4.Emit(buf, 10);
            var ok4 = Ipv4Repr.TryParse(buf.AsSpan(0, 30), out var back4, out _, out var l4, out _) && back4 == v4 && l4 == 10;
            v6.Emit(buf, 10);
            var ok6 = Ipv6Repr.TryParse(buf.AsSpan(0, 50), out var back6, out var l6, out _) && back6 == v6 && l6 == 10;
            return ok4 && ok6;
        }));

    [Fact]
    public void Incremental_update_matches_full_recompute() =>
        Check.One(Config, Prop.ForAll(Generators.Packets.ToArbitrary(), Generators.V4.ToArbitrary(), (p, newDst) =>
        {
            if (p.ControlOnly || p.Protocol != SalPacketRepr.ProtocolTcp)
            {
                return true;
            }

            var buf = new byte[2048];
            var n = p.Emit(buf, [1, 2, 3], V4Pseudo);
            var sal = buf[8] * 4;
            var ck = (ushort)((buf[sal + 16] << 8) | buf[sal + 17]);
            Span<byte> oldA = stackalloc byte[4];
            Span<byte> newA = stackalloc byte[4];
            V4Pseudo.Destination.WriteAddress(oldA);
            newDst.WriteAddress(newA);
            var updated = InternetChecksum.Update(ck, oldA, newA);
            var moved = new TransportPseudoHeader(V4Pseudo.Source, newDst);
            buf[sal + 16] = (byte)(updated >> 8);
            buf[sal + 17] = (byte)updated;
            return SalPacketRepr.VerifyTransportChecksum(buf.AsSpan(0, n), moved);
        }));
}

internal static class ServiceIdTestExtensions
{
    /// <summary>True when any bit at or after <paramref name="start"/> is set.</summary>
    public static bool GetBitsOrZero(this ServiceId id, int start)
    {
        for (var i = start; i < ServiceId.Bits; i++)
        {
            if (id.GetBit(i))
            {
                return true;
            }
        }

        return false;
    }
}
