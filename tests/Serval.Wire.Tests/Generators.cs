using FsCheck;
using FsCheck.Fluent;
using Serval.Wire;

namespace Serval.Wire.Tests;

/// <summary>FsCheck generators for wire values.</summary>
internal static class Generators
{
    public static Gen<uint> UInt32 => Gen.Choose(0, 0xFFFF).SelectMany(hi => Gen.Choose(0, 0xFFFF), (hi, lo) => ((uint)hi << 16) | (uint)lo);

    public static Gen<ulong> UInt64 => UInt32.SelectMany(_ => UInt32, (a, b) => ((ulong)a << 32) | b);

    public static Gen<ushort> UInt16 => Gen.Choose(0, 0xFFFF).Select(x => (ushort)x);

    public static Gen<ServiceId> ServiceIds =>
        from a in UInt64
        from b in UInt64
        from c in UInt64
        from d in UInt64
        select new ServiceId(a, b, c, d);

    public static Gen<LinkAddress> V4 => UInt32.Select(x => LinkAddress.FromIPv4(x));

    public static Gen<LinkAddress> V6 =>
        from a in UInt64
        from b in UInt64
        select LinkAddress.FromBytes([.. BitConverter.GetBytes(a), .. BitConverter.GetBytes(b)]);

    public static Gen<SalControl> Controls =>
        from f in Gen.Choose(0, 255)
        from v in UInt32
        from a in UInt32
        from n in UInt64
        select new SalControl((SalControlFlags)f, v, a, new Nonce(n));

    public static Gen<SalSourceRoute> Routes =>
        Gen.Elements(false, true).SelectMany(
            v6 => Gen.Choose(2, v6 ? 15 : 20).SelectMany(n => Gen.ArrayOf(v6 ? V6 : V4, n)),
            (_, addrs) => new SalSourceRoute(addrs));

    public static Gen<TcpRepr> Tcps =>
        from seq in UInt32
        from ack in UInt32
        from flags in Gen.Choose(0, 0x1FF)
        from win in UInt16
        from urg in UInt16
        from mss in Gen.OneOf(Gen.Constant<ushort?>(null), UInt16.Select(x => (ushort?)x))
        from ws in Gen.OneOf(Gen.Constant<byte?>(null), Gen.Choose(0, 14).Select(x => (byte?)x))
        from sackOk in Gen.Elements(false, true)
        from ts in Gen.OneOf(Gen.Constant<TcpTimestamp?>(null), UInt32.SelectMany(_ => UInt32, (a, b) => (TcpTimestamp?)new TcpTimestamp(a, b)))
        from nsack in Gen.Choose(0, 4)
        from blocks in Gen.ArrayOf(UInt32.SelectMany(_ => UInt32, (l, r) => new TcpSackBlock(l, r)), nsack)
        select Fit(new TcpRepr
        {
            SequenceNumber = seq,
            AckNumber = ack,
            Flags = (TcpFlags)flags,
            Window = win,
            UrgentPointer = urg,
            MaxSegmentSize = mss,
            WindowScale = ws,
            SackPermitted = sackOk,
            Timestamp = ts,
            SackBlocks = TcpSackBlocks.From(blocks),
        });

    /// <summary>Keeps only the SACK blocks that fit, so that emit-then-parse is the identity.</summary>
    private static TcpRepr Fit(TcpRepr t)
    {
        var fixedLen = (t.MaxSegmentSize.HasValue ? 4 : 0) + (t.Timestamp.HasValue ? 12 : t.SackPermitted ? 4 : 0) + (t.WindowScale.HasValue ? 4 : 0);
        var room = 40 - fixedLen - 4;
        var fit = room < 8 ? 0 : Math.Min(t.SackBlocks.Count, room / 8);
        return t with { SackBlocks = t.SackBlocks.Take(fit) };
    }

    public static Gen<SalPacketRepr> Packets =>
        from proto in Gen.Elements(SalPacketRepr.ProtocolTcp, SalPacketRepr.ProtocolUdp)
        from src in UInt32
        from dst in UInt32
        from control in Gen.OneOf(Gen.Constant<SalControl?>(null), Controls.Select(c => (SalControl?)c))
        from nsvc in Gen.Choose(0, 2)
        from d in ServiceIds
        from s in ServiceIds
        from route in Gen.OneOf(Gen.Constant<SalSourceRoute?>(null), Routes.Select(r => (SalSourceRoute?)r))
        from tcp in Tcps
        from udpck in Gen.Elements(false, true)
        from controlOnly in Gen.Elements(false, false, false, true)
        from probe in Gen.OneOf(Gen.Constant<SalPathProbe?>(null), UInt64.SelectMany(_ => Gen.Elements(false, true), (c, r) => (SalPathProbe?)new SalPathProbe(r, c)))
        select new SalPacketRepr
        {
            SourceFlow = new FlowId(src),
            DestinationFlow = new FlowId(dst),
            Protocol = proto,
            Control = control,
            DestinationService = nsvc > 0 ? d : null,
            SourceService = nsvc > 1 ? s : null,
            SourceRoute = route,
            PathProbe = probe,
            ControlOnly = controlOnly,
            Tcp = proto == SalPacketRepr.ProtocolTcp && !controlOnly ? tcp : default,
            Udp = proto == SalPacketRepr.ProtocolUdp && !controlOnly ? new UdpRepr { HasChecksum = udpck } : default,
        };
}
