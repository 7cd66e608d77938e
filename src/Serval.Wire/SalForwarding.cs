using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// A service router's rewrite of a received first packet, done in the receive buffer (docs/engine.md, "Forwarding in
/// place"): the router's address is appended to the SOURCE (SOURCE6) extension, or a SOURCE extension
/// [client, router] is inserted, in the headroom in front of the packet; only the SAL header bytes in front of the
/// insertion point move; the SAL checksum and the transport checksum are updated incrementally (RFC 1624) instead of
/// being computed again over the packet. The result is byte for byte what <see cref="SalPacketRepr.Emit"/> writes for
/// the parsed packet with the longer route, provided <see cref="HasCanonicalHeaders"/> holds for the received packet.
/// </summary>
public static class SalForwarding
{
    /// <summary>The most a forwarded packet grows by: a new SOURCE6 extension of two IPv6 addresses.</summary>
    public const int MaxGrowth = 4 + (2 * 16);

    private const byte PathType = 6;
    private const byte KeyExchangeType = 9;
    private const byte AuthType = 10;

    /// <summary>
    /// Whether the SAL and transport headers of <paramref name="packet"/> (parsed as <paramref name="repr"/> with
    /// <paramref name="payloadLength"/> payload bytes) are exactly what <paramref name="repr"/> emits, apart from the
    /// transport checksum field: no PAD or ADDRESS extension, extensions in the order this stack writes them, reserved
    /// bytes and ports as it writes them, TCP options in its layout. Only then is an in-place rewrite identical to a
    /// re-emit (which normalises the rest). <paramref name="scratch"/> receives the emitted headers (it must hold the
    /// headers and the payload length, as <see cref="SalPacketRepr.EmitHeaders"/> requires).
    /// </summary>
    public static bool HasCanonicalHeaders(ReadOnlySpan<byte> packet, in SalPacketRepr repr, int payloadLength, Span<byte> scratch)
    {
        var hl = repr.EmitHeaders(scratch, payloadLength);
        if (hl == 0 || packet.Length < hl + payloadLength)
        {
            return false;
        }

        var sal = repr.SalHeaderLength;
        if (!packet[..sal].SequenceEqual(scratch[..sal]))
        {
            return false;
        }

        if (repr.ControlOnly)
        {
            return true;
        }

        // The transport checksum field (TCP bytes 16-17, UDP bytes 6-7) is not compared: the emitter fills it later.
        var checksumAt = sal + (repr.Protocol == SalPacketRepr.ProtocolTcp ? 16 : 6);
        return packet[sal..checksumAt].SequenceEqual(scratch[sal..checksumAt])
            && packet[(checksumAt + 2)..hl].SequenceEqual(scratch[(checksumAt + 2)..hl]);
    }

    /// <summary>
    /// Rewrites the packet at <c>buffer[offset..(offset + length)]</c> for forwarding: appends <paramref name="router"/>
    /// to its SOURCE (SOURCE6) extension, or inserts the extension [<paramref name="client"/>, <paramref name="router"/>]
    /// when it has none, moving the SAL header bytes in front of the insertion point into the headroom before
    /// <paramref name="offset"/>; updates the SAL header length and the SAL checksum, and the transport checksum for the
    /// change of pseudo-header from <paramref name="received"/> (the one the received checksum verified with) to
    /// <paramref name="forwarded"/>, both incrementally (RFC 1624). A UDP checksum of 0 ("not computed") stays 0.
    /// Returns the offset where the rewritten packet now starts (its length is <paramref name="length"/> plus the
    /// growth), or -1, with the buffer untouched, when the headroom is too small, the route is full or of the other
    /// family, or the SAL header would exceed 255 words. The packet must have parsed, and its length must end at its
    /// payload's end.
    /// </summary>
    public static int RewriteInPlace(Span<byte> buffer, int offset, int length, LinkAddress client, LinkAddress router, in TransportPseudoHeader received, in TransportPseudoHeader forwarded, out int newLength)
    {
        newLength = 0;
        if (offset < 0 || length < SalHeaderView.BaseLength || offset + length > buffer.Length || router.IsNone)
        {
            return -1;
        }

        var packet = buffer.Slice(offset, length);
        var sal = packet[8] * 4;
        var v6 = router.IsIPv6;
        var addressLength = v6 ? 16 : 4;

        // Find the SOURCE extension, else where one goes: after CONTROL and the SERVICE extensions, before PATH, KEYX
        // and AUTH (docs/protocol.md §3, the order this stack emits).
        var sourceAt = -1;
        var insertAt = sal;
        var o = SalHeaderView.BaseLength;
        while (o < sal)
        {
            var type = (byte)(packet[o] >> 4);
            if (type == 0)
            {
                return -1; // PAD: not a header this stack emits
            }

            if (o + 1 >= sal)
            {
                return -1;
            }

            var extLength = packet[o + 1];
            if (type is SalSourceRoute.TypeV4 or SalSourceRoute.TypeV6)
            {
                if ((type == SalSourceRoute.TypeV6) != v6)
                {
                    return -1;
                }

                var count = (extLength - 4) / addressLength;
                if (count >= (v6 ? SalSourceRoute.MaxV6Addresses : SalSourceRoute.MaxV4Addresses))
                {
                    return -1;
                }

                sourceAt = o;
                insertAt = o + extLength;
                break;
            }

            if (type is PathType or KeyExchangeType or AuthType)
            {
                insertAt = o;
                break;
            }

            o += extLength;
        }

        if (sourceAt < 0 && client.IsIPv6 != v6)
        {
            return -1;
        }

        var growth = sourceAt >= 0 ? addressLength : 4 + (2 * addressLength);
        if (offset < growth || sal + growth > 255 * 4)
        {
            return -1;
        }

        // What the SAL checksum covers changes in two 16-bit words (header length | protocol, and the SOURCE
        // extension's type | length when it grows) and by the inserted bytes, which sit on a 4-byte boundary so that
        // the words after them keep their alignment.
        var oldHeaderWord = BinaryPrimitives.ReadUInt16BigEndian(packet[8..]);
        var oldSourceWord = sourceAt >= 0 ? BinaryPrimitives.ReadUInt16BigEndian(packet[sourceAt..]) : (ushort)0;
        var oldSalChecksum = BinaryPrimitives.ReadUInt16BigEndian(packet[10..]);

        var start = offset - growth;
        buffer.Slice(offset, insertAt).CopyTo(buffer.Slice(start, insertAt));
        var result = buffer.Slice(start, length + growth);
        var inserted = result.Slice(insertAt, growth);
        if (sourceAt >= 0)
        {
            router.WriteAddress(inserted);
            result[sourceAt + 1] = (byte)(result[sourceAt + 1] + addressLength);
        }
        else
        {
            inserted[0] = (byte)((v6 ? SalSourceRoute.TypeV6 : SalSourceRoute.TypeV4) << 4);
            inserted[1] = (byte)growth;
            inserted[2] = 0;
            inserted[3] = 0;
            client.WriteAddress(inserted[4..]);
            router.WriteAddress(inserted[(4 + addressLength)..]);
        }

        result[8] = (byte)((sal + growth) / 4);
        var sum = (ulong)(ushort)~oldSalChecksum;
        sum += (ushort)~oldHeaderWord;
        sum += BinaryPrimitives.ReadUInt16BigEndian(result[8..]);
        if (sourceAt >= 0)
        {
            sum += (ushort)~oldSourceWord;
            sum += BinaryPrimitives.ReadUInt16BigEndian(result[sourceAt..]);
        }

        sum = InternetChecksum.Add(sum, inserted);
        BinaryPrimitives.WriteUInt16BigEndian(result[10..], InternetChecksum.Finish(sum));

        var segment = result[(sal + growth)..];
        if (!segment.IsEmpty && received != forwarded)
        {
            var protocol = result[9];
            var at = protocol == SalPacketRepr.ProtocolTcp ? 16 : 6;
            var checksum = BinaryPrimitives.ReadUInt16BigEndian(segment[at..]);
            if (protocol == SalPacketRepr.ProtocolTcp || checksum != 0)
            {
                // HC' = ~(~HC + ~S + S'), S and S' the pseudo-header sums (the segment length cancels out).
                var t = (ulong)(ushort)~checksum;
                t += (ushort)~InternetChecksum.Fold(received.Sum(protocol, segment.Length));
                t += InternetChecksum.Fold(forwarded.Sum(protocol, segment.Length));
                var c = InternetChecksum.Finish(t);
                if (protocol == SalPacketRepr.ProtocolUdp && c == 0)
                {
                    c = 0xFFFF;
                }

                BinaryPrimitives.WriteUInt16BigEndian(segment[at..], c);
            }
        }

        newLength = length + growth;
        return start;
    }
}
