using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// A TCP header as a value (RFC 9293 §3.1) with the options Serval's stream transport uses: MSS (RFC 9293 §3.7.1),
/// window scale and timestamps (RFC 7323), SACK-permitted and SACK blocks (RFC 2018). Ports are always 0 inside
/// Serval and are not represented. Unknown options are skipped on parse.
/// </summary>
/// <remarks>
/// Options are emitted in one canonical layout: MSS; then timestamps (preceded by SACK-permitted or two NOPs);
/// otherwise SACK-permitted after two NOPs; then NOP + window scale; then two NOPs + SACK blocks (as many as fit in
/// 40 option bytes). For the reference implementation's "MSS, NOP, WS" SYNs this is byte-identical.
/// </remarks>
public readonly record struct TcpRepr
{
    /// <summary>Largest options area in bytes.</summary>
    public const int MaxOptionsLength = 40;

    /// <summary>Sequence number.</summary>
    public uint SequenceNumber { get; init; }

    /// <summary>Acknowledgment number (meaningful with <see cref="TcpFlags.Ack"/>).</summary>
    public uint AckNumber { get; init; }

    /// <summary>Flags.</summary>
    public TcpFlags Flags { get; init; }

    /// <summary>Window field as sent (unscaled).</summary>
    public ushort Window { get; init; }

    /// <summary>Urgent pointer.</summary>
    public ushort UrgentPointer { get; init; }

    /// <summary>MSS option, if present.</summary>
    public ushort? MaxSegmentSize { get; init; }

    /// <summary>Window-scale shift option, if present.</summary>
    public byte? WindowScale { get; init; }

    /// <summary>Whether SACK-permitted is present.</summary>
    public bool SackPermitted { get; init; }

    /// <summary>Timestamps option, if present.</summary>
    public TcpTimestamp? Timestamp { get; init; }

    /// <summary>SACK blocks (empty when absent).</summary>
    public TcpSackBlocks SackBlocks { get; init; }

    /// <summary>Whether <paramref name="flag"/> is set.</summary>
    public bool Has(TcpFlags flag) => (Flags & flag) == flag;

    /// <summary>Sequence space the segment occupies: payload length plus one for SYN and one for FIN.</summary>
    public int SequenceLength(int payloadLength) =>
        payloadLength + (Has(TcpFlags.Syn) ? 1 : 0) + (Has(TcpFlags.Fin) ? 1 : 0);

    /// <summary>Number of SACK blocks that fit beside the other options.</summary>
    private int SackBlocksThatFit()
    {
        var other = OptionsLengthWithoutSack();
        var room = MaxOptionsLength - other - 4;
        return room < 8 ? 0 : Math.Min(SackBlocks.Count, room / 8);
    }

    private int OptionsLengthWithoutSack()
    {
        var n = 0;
        if (MaxSegmentSize.HasValue)
        {
            n += 4;
        }

        if (Timestamp.HasValue)
        {
            n += 12;
        }
        else if (SackPermitted)
        {
            n += 4;
        }

        if (WindowScale.HasValue)
        {
            n += 4;
        }

        return n;
    }

    /// <summary>Header length in bytes, options included (a multiple of 4, 20–60).</summary>
    public int HeaderLength
    {
        get
        {
            var sack = SackBlocksThatFit();
            return TcpHeaderView.MinLength + OptionsLengthWithoutSack() + (sack > 0 ? 4 + (8 * sack) : 0);
        }
    }

    /// <summary>
    /// Parses the header at the start of <paramref name="segment"/>; <paramref name="headerLength"/> tells where
    /// the payload starts. Does not verify the checksum (see <see cref="TcpHeaderView.VerifyChecksum"/>).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> segment, out TcpRepr repr, out int headerLength, out WireError error)
    {
        repr = default;
        headerLength = 0;
        if (segment.Length < TcpHeaderView.MinLength)
        {
            error = WireError.Truncated;
            return false;
        }

        var hl = (segment[12] >> 4) * 4;
        if (hl < TcpHeaderView.MinLength || hl > segment.Length)
        {
            error = WireError.BadDataOffset;
            return false;
        }

        ushort? mss = null;
        byte? ws = null;
        var sackOk = false;
        TcpTimestamp? ts = null;
        var sack = TcpSackBlocks.Empty;
        var opts = segment[TcpHeaderView.MinLength..hl];
        var i = 0;
        while (i < opts.Length)
        {
            var kind = opts[i];
            if (kind == 0)
            {
                break; // EOL: the rest is padding.
            }

            if (kind == 1)
            {
                i++;
                continue;
            }

            if (i + 1 >= opts.Length)
            {
                error = WireError.BadTcpOption;
                return false;
            }

            var len = opts[i + 1];
            if (len < 2 || i + len > opts.Length)
            {
                error = WireError.BadTcpOption;
                return false;
            }

            var body = opts.Slice(i + 2, len - 2);
            switch (kind)
            {
                case 2:
                    if (len != 4)
                    {
                        error = WireError.BadTcpOption;
                        return false;
                    }

                    mss = BinaryPrimitives.ReadUInt16BigEndian(body);
                    break;
                case 3:
                    if (len != 3)
                    {
                        error = WireError.BadTcpOption;
                        return false;
                    }

                    ws = body[0];
                    break;
                case 4:
                    if (len != 2)
                    {
                        error = WireError.BadTcpOption;
                        return false;
                    }

                    sackOk = true;
                    break;
                case 5:
                    if ((len - 2) % 8 != 0 || len == 2)
                    {
                        error = WireError.BadTcpOption;
                        return false;
                    }

                    for (var k = 0; k + 8 <= body.Length; k += 8)
                    {
                        sack = sack.Add(new TcpSackBlock(
                            BinaryPrimitives.ReadUInt32BigEndian(body[k..]),
                            BinaryPrimitives.ReadUInt32BigEndian(body[(k + 4)..])));
                    }

                    break;
                case 8:
                    if (len != 10)
                    {
                        error = WireError.BadTcpOption;
                        return false;
                    }

                    ts = new TcpTimestamp(BinaryPrimitives.ReadUInt32BigEndian(body), BinaryPrimitives.ReadUInt32BigEndian(body[4..]));
                    break;
                default:
                    break; // Unknown option: skipped by its length.
            }

            i += len;
        }

        repr = new TcpRepr
        {
            SequenceNumber = BinaryPrimitives.ReadUInt32BigEndian(segment[4..]),
            AckNumber = BinaryPrimitives.ReadUInt32BigEndian(segment[8..]),
            Flags = (TcpFlags)(((segment[12] & 1) << 8) | segment[13]),
            Window = BinaryPrimitives.ReadUInt16BigEndian(segment[14..]),
            UrgentPointer = BinaryPrimitives.ReadUInt16BigEndian(segment[18..]),
            MaxSegmentSize = mss,
            WindowScale = ws,
            SackPermitted = sackOk,
            Timestamp = ts,
            SackBlocks = sack,
        };
        headerLength = hl;
        error = WireError.None;
        return true;
    }

    /// <summary>
    /// Writes the header (<see cref="HeaderLength"/> bytes) with ports 0 and checksum 0 into the start of
    /// <paramref name="buffer"/>; returns the header length. Fill the checksum afterwards with
    /// <see cref="TcpHeaderView.FillChecksum"/> once the payload is in place.
    /// </summary>
    public int Emit(Span<byte> buffer)
    {
        var hl = HeaderLength;
        var b = buffer[..hl];
        BinaryPrimitives.WriteUInt32BigEndian(b, 0); // ports
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], SequenceNumber);
        BinaryPrimitives.WriteUInt32BigEndian(b[8..], AckNumber);
        b[12] = (byte)(((hl / 4) << 4) | (((ushort)Flags >> 8) & 1));
        b[13] = (byte)Flags;
        BinaryPrimitives.WriteUInt16BigEndian(b[14..], Window);
        BinaryPrimitives.WriteUInt16BigEndian(b[16..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(b[18..], UrgentPointer);
        var o = b[TcpHeaderView.MinLength..];
        var i = 0;
        if (MaxSegmentSize is { } mss)
        {
            o[i] = 2;
            o[i + 1] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(o[(i + 2)..], mss);
            i += 4;
        }

        if (Timestamp is { } ts)
        {
            if (SackPermitted)
            {
                o[i] = 4;
                o[i + 1] = 2;
            }
            else
            {
                o[i] = 1;
                o[i + 1] = 1;
            }

            o[i + 2] = 8;
            o[i + 3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(o[(i + 4)..], ts.Value);
            BinaryPrimitives.WriteUInt32BigEndian(o[(i + 8)..], ts.EchoReply);
            i += 12;
        }
        else if (SackPermitted)
        {
            o[i] = 1;
            o[i + 1] = 1;
            o[i + 2] = 4;
            o[i + 3] = 2;
            i += 4;
        }

        if (WindowScale is { } ws)
        {
            o[i] = 1;
            o[i + 1] = 3;
            o[i + 2] = 3;
            o[i + 3] = ws;
            i += 4;
        }

        var sack = SackBlocksThatFit();
        if (sack > 0)
        {
            o[i] = 1;
            o[i + 1] = 1;
            o[i + 2] = 5;
            o[i + 3] = (byte)(2 + (8 * sack));
            i += 4;
            for (var k = 0; k < sack; k++)
            {
                BinaryPrimitives.WriteUInt32BigEndian(o[i..], SackBlocks[k].Left);
                BinaryPrimitives.WriteUInt32BigEndian(o[(i + 4)..], SackBlocks[k].Right);
                i += 8;
            }
        }

        return hl;
    }
}
