using System.Buffers.Binary;
using Serval.Wire;

namespace Serval.Testing;

/// <summary>
/// A seeded generator of hostile SAL packets for the fuzz tests (docs/testing.md): random byte strings, valid packets
/// of every kind (SYN, SYN-ACK, ACK, data, FIN, RST, RSYN; SERVICE, SOURCE, SOURCE6, ADDRESS, PAD, PATH; TCP options,
/// UDP) and mutations of valid packets (bit flips, interesting values, truncation, extension, splicing, duplicated
/// extensions), with the checksums fixed up on a fraction so the mutations get past them into the deeper code.
/// </summary>
internal sealed class PacketFuzzer
{
    /// <summary>Environment variable that multiplies the packet counts of the fuzz tests (default 1).</summary>
    public const string ScaleVariable = "SERVAL_FUZZ_PACKETS";

    private static readonly byte[] InterestingBytes = [0, 1, 2, 3, 4, 5, 8, 9, 0x0C, 0x10, 0x14, 0x20, 0x24, 0x40, 0x7F, 0x80, 0x81, 0xFE, 0xFF];

    private static readonly ushort[] InterestingShorts = [0, 1, 7, 8, 9, 12, 20, 40, 60, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF];

    private static readonly uint[] InterestingInts = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF];

    private readonly byte[] _scratch = new byte[4096];

    public PacketFuzzer(int seed) => Rng = new Random(seed);

    /// <summary>The generator's random source (deterministic for a seed).</summary>
    public Random Rng { get; }

    /// <summary>Services that valid packets address (the caller adds the ones its engines know).</summary>
    public List<ServiceId> Services { get; } = [ServiceId.FromNumber(16385), ServiceId.FromName("fuzz")];

    /// <summary>Addresses that valid SOURCE extensions carry.</summary>
    public List<LinkAddress> Addresses { get; } = [LinkAddress.Parse("10.0.0.1"), LinkAddress.Parse("10.0.0.2")];

    /// <summary>Packets that mutations start from (captures, packets seen on a link).</summary>
    public List<byte[]> Corpus { get; } = [];

    /// <summary>
    /// The packet count for a test: <paramref name="defaultCount"/> times the integer in <see cref="ScaleVariable"/>,
    /// or that variable's value itself when it is larger than 1000 (an absolute count).
    /// </summary>
    public static int Count(int defaultCount)
    {
        var text = Environment.GetEnvironmentVariable(ScaleVariable);
        if (string.IsNullOrWhiteSpace(text) || !long.TryParse(text, out var v) || v <= 0)
        {
            return defaultCount;
        }

        return (int)Math.Min(int.MaxValue, v > 1000 ? v : defaultCount * v);
    }

    /// <summary>Hex of a packet for failure messages.</summary>
    public static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes);

    /// <summary>
    /// The next fuzz packet: random bytes, a mutated valid packet or a mutated corpus packet, with the checksums
    /// fixed over <paramref name="pseudo"/> on a fraction.
    /// </summary>
    public byte[] Next(in TransportPseudoHeader pseudo)
    {
        var roll = Rng.Next(100);
        if (roll < 10)
        {
            return RandomBytes();
        }

        byte[] seed = roll < 55 || Corpus.Count == 0 ? EmitValid(RandomRepr(), pseudo) : Corpus[Rng.Next(Corpus.Count)];
        var p = Rng.Next(8) == 0 ? (byte[])seed.Clone() : Mutate(seed);
        FixUp(p, pseudo);
        return p;
    }

    /// <summary>Random bytes of length 0..2000; half get a plausible SAL header length and a valid SAL checksum.</summary>
    public byte[] RandomBytes()
    {
        var b = new byte[Rng.Next(0, 2001)];
        Rng.NextBytes(b);
        if (b.Length >= 12 && Rng.Next(2) == 0)
        {
            b[8] = (byte)Rng.Next(3, Math.Min(255, b.Length / 4) + 1);
            b[9] = Rng.Next(2) == 0 ? SalPacketRepr.ProtocolTcp : SalPacketRepr.ProtocolUdp;
            FixSalChecksum(b);
        }

        return b;
    }

    /// <summary>Fixes the SAL checksum on most packets and the transport checksum on many of those.</summary>
    public void FixUp(byte[] p, in TransportPseudoHeader pseudo)
    {
        var r = Rng.Next(10);
        if (r < 6)
        {
            FixSalChecksum(p);
            if (r < 4)
            {
                FixTransportChecksum(p, pseudo);
            }
        }
    }

    /// <summary>A random valid packet: one of the kinds the protocol sends, with random extensions and TCP options.</summary>
    public SalPacketRepr RandomRepr(FlowId? source = null, FlowId? destination = null, Nonce? nonce = null)
    {
        var tcp = Rng.Next(2) == 0;
        var kind = Rng.Next(8);
        var flags = kind switch
        {
            0 => SalControlFlags.Syn,
            1 => SalControlFlags.Syn | SalControlFlags.Ack,
            2 => SalControlFlags.Ack,
            3 => SalControlFlags.Fin,
            4 => SalControlFlags.Fin | SalControlFlags.Ack,
            5 => SalControlFlags.Rst,
            6 => SalControlFlags.Rsyn,
            _ => SalControlFlags.Rsyn | SalControlFlags.Ack,
        };
        var data = Rng.Next(4) == 0;
        var controlOnly = !data && kind >= 3 && Rng.Next(2) == 0;
        var first = !data && kind == 0;
        var n = nonce ?? new Nonce(NextUInt64());
        return new SalPacketRepr
        {
            SourceFlow = source ?? new FlowId(RandomFlowValue()),
            DestinationFlow = destination ?? (first ? FlowId.None : new FlowId(RandomFlowValue())),
            Protocol = tcp ? SalPacketRepr.ProtocolTcp : SalPacketRepr.ProtocolUdp,
            Control = data ? null : new SalControl(flags, NextUInt32(), NextUInt32(), n),
            DestinationService = first || data || Rng.Next(5) == 0 ? Services[Rng.Next(Services.Count)] : null,
            SourceService = data && Rng.Next(2) == 0 ? Services[Rng.Next(Services.Count)] : null,
            SourceRoute = Rng.Next(4) == 0 ? RandomRoute() : null,
            PathProbe = Rng.Next(10) == 0 ? new SalPathProbe(Rng.Next(2) == 0, NextUInt64()) : null,
            ControlOnly = controlOnly,
            Tcp = tcp && !controlOnly ? RandomTcp(first ? TcpFlags.Syn : kind == 1 ? TcpFlags.Syn | TcpFlags.Ack : TcpFlags.Ack) : default,
            Udp = !tcp && !controlOnly ? new UdpRepr { HasChecksum = Rng.Next(4) != 0 } : default,
        };
    }

    /// <summary>A TCP header with <paramref name="flags"/> (sometimes others) and random options.</summary>
    public TcpRepr RandomTcp(TcpFlags flags)
    {
        if (Rng.Next(8) == 0)
        {
            flags = (TcpFlags)Rng.Next(0x200);
        }

        var mss = Rng.Next(2) == 0 ? (ushort?)(ushort)Rng.Next(0x10000) : null;
        var ts = Rng.Next(2) == 0 ? (TcpTimestamp?)new TcpTimestamp(NextUInt32(), NextUInt32()) : null;
        var ws = Rng.Next(3) == 0 ? (byte?)(byte)Rng.Next(20) : null;
        var blocks = new TcpSackBlock[Rng.Next(3) == 0 ? Rng.Next(1, 5) : 0];
        for (var i = 0; i < blocks.Length; i++)
        {
            var left = NextUInt32();
            blocks[i] = new TcpSackBlock(left, left + (uint)Rng.Next(1, 100_000));
        }

        var t = new TcpRepr
        {
            SequenceNumber = NextUInt32(),
            AckNumber = NextUInt32(),
            Flags = flags,
            Window = (ushort)Rng.Next(0x10000),
            UrgentPointer = Rng.Next(8) == 0 ? (ushort)Rng.Next(0x10000) : (ushort)0,
            MaxSegmentSize = mss,
            WindowScale = ws,
            SackPermitted = Rng.Next(2) == 0,
            Timestamp = ts,
            SackBlocks = TcpSackBlocks.From(blocks),
        };
        return t;
    }

    /// <summary>
    /// Emits <paramref name="repr"/> with a random payload (none for control-only packets), then sometimes inserts PAD
    /// and ADDRESS extensions (which the emitter never writes) with the SAL checksum fixed.
    /// </summary>
    public byte[] EmitValid(in SalPacketRepr repr, in TransportPseudoHeader pseudo, int maxPayload = 1200)
    {
        var payload = repr.ControlOnly ? [] : new byte[Rng.Next(4) == 0 ? 0 : Rng.Next(0, maxPayload + 1)];
        Rng.NextBytes(payload);
        var n = repr.Emit(_scratch, payload, pseudo);
        var p = _scratch.AsSpan(0, n).ToArray();
        if (Rng.Next(4) == 0)
        {
            p = InsertExtension(p, Rng.Next(2) == 0 ? Pad() : Address());
        }

        return p;
    }

    /// <summary>Applies one to three mutations to a copy of <paramref name="seed"/>.</summary>
    public byte[] Mutate(byte[] seed)
    {
        var b = (byte[])seed.Clone();
        for (var k = Rng.Next(3) == 0 ? Rng.Next(2, 4) : 1; k > 0; k--)
        {
            b = MutateOnce(b);
        }

        return b;
    }

    private byte[] MutateOnce(byte[] b)
    {
        if (b.Length == 0)
        {
            return RandomBytes();
        }

        switch (Rng.Next(12))
        {
            case 0:
            case 1:
                for (var k = Rng.Next(1, 5); k > 0; k--)
                {
                    b[Rng.Next(b.Length)] ^= (byte)(1 << Rng.Next(8));
                }

                return b;
            case 2:
                b[PickOffset(b)] = InterestingBytes[Rng.Next(InterestingBytes.Length)];
                return b;
            case 3:
                {
                    var o = PickOffset(b);
                    if (o + 2 <= b.Length)
                    {
                        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(o), Rng.Next(3) == 0 ? (ushort)(b.Length - o) : InterestingShorts[Rng.Next(InterestingShorts.Length)]);
                    }

                    return b;
                }

            case 4:
                {
                    var o = PickOffset(b);
                    if (o + 4 <= b.Length)
                    {
                        var v = Rng.Next(2) == 0 ? InterestingInts[Rng.Next(InterestingInts.Length)] : BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(o)) + (uint)Rng.Next(-3, 4);
                        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(o), v);
                    }

                    return b;
                }

            case 5:
                b[Rng.Next(b.Length)] = (byte)Rng.Next(256);
                return b;
            case 6:
                return b[..Rng.Next(b.Length)];
            case 7:
                {
                    var extra = new byte[Rng.Next(1, 64)];
                    Rng.NextBytes(extra);
                    var pos = Rng.Next(b.Length + 1);
                    return [.. b[..pos], .. extra, .. b[pos..]];
                }

            case 8:
                {
                    var other = Corpus.Count > 0 && Rng.Next(2) == 0 ? Corpus[Rng.Next(Corpus.Count)] : EmitValid(RandomRepr(), default);
                    var cut = Rng.Next(b.Length + 1);
                    var from = Rng.Next(other.Length + 1);
                    return [.. b[..cut], .. other[from..]];
                }

            case 9:
                return DuplicateExtension(b);
            case 10:
                {
                    // The SAL header length, the field every other parser depends on.
                    b[8 % b.Length] = Rng.Next(2) == 0 ? (byte)(b.Length > 8 ? b[8] + Rng.Next(-2, 3) : 0) : (byte)Rng.Next(256);
                    return b;
                }

            default:
                {
                    var pos = Rng.Next(b.Length);
                    var len = Rng.Next(1, Math.Min(32, b.Length - pos) + 1);
                    return [.. b[..pos], .. b[(pos + len)..]];
                }
        }
    }

    /// <summary>Offsets in the headers more often than in the payload.</summary>
    private int PickOffset(byte[] b)
    {
        var header = b.Length >= 12 ? Math.Min(b.Length, (b[8] * 4) + 40) : b.Length;
        return Rng.Next(3) == 0 ? Rng.Next(b.Length) : Rng.Next(Math.Max(1, header));
    }

    /// <summary>Copies one extension of the SAL header (as located by a walk) and inserts the copy after it.</summary>
    private byte[] DuplicateExtension(byte[] b)
    {
        if (b.Length < 12)
        {
            return b;
        }

        var hl = Math.Min(b[8] * 4, b.Length);
        var starts = new List<(int Offset, int Length)>();
        for (var i = 12; i < hl;)
        {
            var type = b[i] >> 4;
            if (type == 0)
            {
                i++;
                continue;
            }

            if (i + 1 >= hl || b[i + 1] < 2 || i + b[i + 1] > hl)
            {
                break;
            }

            starts.Add((i, b[i + 1]));
            i += b[i + 1];
        }

        if (starts.Count == 0)
        {
            return b;
        }

        var (o, l) = starts[Rng.Next(starts.Count)];
        var copy = b.AsSpan(o, l).ToArray();
        byte[] r = [.. b[..(o + l)], .. copy, .. b[(o + l)..]];
        if (l % 4 == 0 && r[8] + (l / 4) <= 255)
        {
            r[8] = (byte)(r[8] + (l / 4));
        }

        return r;
    }

    /// <summary>Inserts an extension right after the SAL base header and fixes header length and SAL checksum.</summary>
    public static byte[] InsertExtension(byte[] packet, byte[] extension)
    {
        if (packet.Length < 12 || packet[8] + (extension.Length / 4) > 255)
        {
            return packet;
        }

        byte[] r = [.. packet[..12], .. extension, .. packet[12..]];
        r[8] = (byte)(r[8] + (extension.Length / 4));
        FixSalChecksum(r);
        return r;
    }

    private byte[] Pad() => new byte[4 * Rng.Next(1, 3)];

    private byte[] Address()
    {
        var e = new byte[12 + (4 * Rng.Next(0, 5))];
        Rng.NextBytes(e);
        e[0] = 3 << 4;
        e[1] = (byte)e.Length;
        return e;
    }

    private SalSourceRoute RandomRoute()
    {
        var v6 = Rng.Next(3) == 0;
        var n = Rng.Next(SalSourceRoute.MinAddresses, (v6 ? SalSourceRoute.MaxV6Addresses : SalSourceRoute.MaxV4Addresses) + 1);
        var a = new LinkAddress[n];
        for (var i = 0; i < n; i++)
        {
            if (!v6 && Rng.Next(2) == 0)
            {
                a[i] = Addresses[Rng.Next(Addresses.Count)];
                continue;
            }

            var bytes = new byte[v6 ? 16 : 4];
            Rng.NextBytes(bytes);
            a[i] = LinkAddress.FromBytes(bytes);
        }

        return new SalSourceRoute(a);
    }

    private uint RandomFlowValue() => Rng.Next(4) == 0 ? (uint)Rng.Next(1, 100) : NextUInt32() | 1;

    public uint NextUInt32() => (uint)Rng.NextInt64(0, 1L << 32);

    public ulong NextUInt64() => (ulong)Rng.NextInt64() ^ ((ulong)Rng.Next(2) << 63);

    /// <summary>Recomputes the SAL checksum over the header length the packet claims (clipped to its length).</summary>
    public static void FixSalChecksum(byte[] p)
    {
        if (p.Length < 12)
        {
            return;
        }

        var hl = Math.Min(p[8] * 4, p.Length);
        if (hl < 12)
        {
            return;
        }

        p[10] = 0;
        p[11] = 0;
        var ck = InternetChecksum.Compute(p.AsSpan(0, hl));
        p[10] = (byte)(ck >> 8);
        p[11] = (byte)ck;
    }

    /// <summary>Recomputes the TCP or UDP checksum of a packet whose SAL header length and protocol are usable.</summary>
    public static void FixTransportChecksum(byte[] p, in TransportPseudoHeader pseudo)
    {
        if (p.Length < 12)
        {
            return;
        }

        var hl = p[8] * 4;
        if (hl < 12 || hl > p.Length)
        {
            return;
        }

        var segment = p.AsSpan(hl);
        if (p[9] == SalPacketRepr.ProtocolTcp && segment.Length >= 20)
        {
            segment[16] = 0;
            segment[17] = 0;
            var c = InternetChecksum.Finish(InternetChecksum.Add(pseudo.Sum(SalPacketRepr.ProtocolTcp, segment.Length), segment));
            BinaryPrimitives.WriteUInt16BigEndian(segment[16..], c);
        }
        else if (p[9] == SalPacketRepr.ProtocolUdp && segment.Length >= 8)
        {
            var ulen = BinaryPrimitives.ReadUInt16BigEndian(segment[4..]);
            if (ulen >= 8 && ulen <= segment.Length && BinaryPrimitives.ReadUInt16BigEndian(segment[6..]) != 0)
            {
                UdpRepr.FillChecksum(segment[..ulen], pseudo);
            }
        }
    }
}
