using System.Buffers.Binary;

namespace Serval.Wire;

/// <summary>
/// A whole Serval packet as a value: SAL base header, extensions, and the transport header (docs/protocol.md §§2–3, 9).
/// The payload is not part of the value: <see cref="TryParse"/> reports where it is, and <see cref="Emit"/> takes it.
/// </summary>
/// <remarks>
/// Extensions are emitted in the reference's order: CONTROL, SERVICE (destination), SERVICE (source), SOURCE/SOURCE6, then ours:
/// PATH, KEYX, AUTH (always last).
/// PAD and ADDRESS are accepted and skipped on parse and never emitted. Parser limits (docs/protocol.md §3): the walk
/// covers exactly <c>length×4−12</c> bytes, at most 10 extensions, one CONTROL, two SERVICE, one SOURCE.
/// </remarks>
public readonly record struct SalPacketRepr
{
    /// <summary>Most extensions in one SAL header.</summary>
    public const int MaxExtensions = 10;

    /// <summary>SAL protocol byte for TCP.</summary>
    public const byte ProtocolTcp = 6;

    /// <summary>SAL protocol byte for UDP.</summary>
    public const byte ProtocolUdp = 17;

    /// <summary>Extension type of SERVICE.</summary>
    public const byte ServiceType = 2;

    /// <summary>Length of the SERVICE extension.</summary>
    public const int ServiceLength = 36;

    /// <summary>The sender's flowID.</summary>
    public FlowId SourceFlow { get; init; }

    /// <summary>The receiver's flowID; <see cref="FlowId.None"/> on SYNs and unconnected datagrams.</summary>
    public FlowId DestinationFlow { get; init; }

    /// <summary>Transport protocol: <see cref="ProtocolTcp"/> or <see cref="ProtocolUdp"/>.</summary>
    public byte Protocol { get; init; }

    /// <summary>The CONTROL extension, if present.</summary>
    public SalControl? Control { get; init; }

    /// <summary>The first SERVICE extension: the destination service.</summary>
    public ServiceId? DestinationService { get; init; }

    /// <summary>The second SERVICE extension: the source service (unconnected datagrams).</summary>
    public ServiceId? SourceService { get; init; }

    /// <summary>The SOURCE or SOURCE6 extension, if present.</summary>
    public SalSourceRoute? SourceRoute { get; init; }

    /// <summary>The PATH extension (ours: path validation), if present.</summary>
    public SalPathProbe? PathProbe { get; init; }

    /// <summary>The KEYX extension (ours: the key exchange of an authenticated flow), if present.</summary>
    public SalKeyExchange? KeyExchange { get; init; }

    /// <summary>The AUTH extension (ours: a packet's number and authentication tag), if present. Emitted last.</summary>
    public SalPacketAuth? Auth { get; init; }

    /// <summary>
    /// Whether the packet ends after the SAL header, with no transport header (the reference sends SAL FIN, ACK, RSYN,
    /// RSYN|ACK and RST this way).
    /// </summary>
    public bool ControlOnly { get; init; }

    /// <summary>The TCP header when <see cref="Protocol"/> is 6.</summary>
    public TcpRepr Tcp { get; init; }

    /// <summary>The UDP header when <see cref="Protocol"/> is 17.</summary>
    public UdpRepr Udp { get; init; }

    /// <summary>Length of the SAL header (base + extensions) this value emits.</summary>
    public int SalHeaderLength =>
        SalHeaderView.BaseLength
        + (Control.HasValue ? SalControl.Length : 0)
        + (DestinationService.HasValue ? ServiceLength : 0)
        + (SourceService.HasValue ? ServiceLength : 0)
        + (SourceRoute?.Length ?? 0)
        + (PathProbe.HasValue ? SalPathProbe.Length : 0)
        + (KeyExchange?.Length ?? 0)
        + (Auth.HasValue ? SalPacketAuth.Length : 0);

    /// <summary>Length of the transport header this value emits.</summary>
    public int TransportHeaderLength => ControlOnly ? 0 : Protocol == ProtocolTcp ? Tcp.HeaderLength : UdpRepr.HeaderLength;

    /// <summary>Total packet length for a payload of <paramref name="payloadLength"/> bytes.</summary>
    public int GetLength(int payloadLength) => SalHeaderLength + TransportHeaderLength + payloadLength;

    /// <summary>
    /// Parses a SAL packet (SAL header onward) and verifies the SAL checksum. The transport checksum needs the
    /// underlay addresses; check it with <see cref="VerifyTransportChecksum"/>.
    /// </summary>
    /// <param name="packet">The bytes from the SAL header to the end of the packet.</param>
    /// <param name="repr">The parsed value.</param>
    /// <param name="payloadOffset">Offset of the payload within <paramref name="packet"/>.</param>
    /// <param name="payloadLength">Payload length (for UDP from its length field; for TCP the rest of the packet).</param>
    /// <param name="error">Why the packet was rejected.</param>
    public static bool TryParse(ReadOnlySpan<byte> packet, out SalPacketRepr repr, out int payloadOffset, out int payloadLength, out WireError error)
    {
        repr = default;
        payloadOffset = 0;
        payloadLength = 0;
        if (packet.Length < SalHeaderView.BaseLength)
        {
            error = WireError.Truncated;
            return false;
        }

        var hl = packet[8] * 4;
        if (hl < SalHeaderView.BaseLength || hl > packet.Length)
        {
            error = WireError.BadHeaderLength;
            return false;
        }

        if (!InternetChecksum.Verify(packet[..hl]))
        {
            error = WireError.BadSalChecksum;
            return false;
        }

        var protocol = packet[9];
        if (protocol is not ProtocolTcp and not ProtocolUdp)
        {
            error = WireError.UnknownTransport;
            return false;
        }

        if (!TryParseExtensions(packet[SalHeaderView.BaseLength..hl], out var control, out var dst, out var src, out var route, out var probe, out var keyx, out var auth, out error))
        {
            return false;
        }

        var transport = packet[hl..];
        TcpRepr tcp = default;
        UdpRepr udp = default;
        var controlOnly = transport.IsEmpty;
        if (controlOnly)
        {
            payloadOffset = hl;
        }
        else if (protocol == ProtocolTcp)
        {
            if (!TcpRepr.TryParse(transport, out tcp, out var th, out error))
            {
                return false;
            }

            payloadOffset = hl + th;
            payloadLength = transport.Length - th;
        }
        else
        {
            if (!UdpRepr.TryParse(transport, out udp, out var ul, out error))
            {
                return false;
            }

            payloadOffset = hl + UdpRepr.HeaderLength;
            payloadLength = ul;
        }

        repr = new SalPacketRepr
        {
            SourceFlow = new FlowId(BinaryPrimitives.ReadUInt32BigEndian(packet)),
            DestinationFlow = new FlowId(BinaryPrimitives.ReadUInt32BigEndian(packet[4..])),
            Protocol = protocol,
            Control = control,
            DestinationService = dst,
            SourceService = src,
            SourceRoute = route,
            PathProbe = probe,
            KeyExchange = keyx,
            Auth = auth,
            ControlOnly = controlOnly,
            Tcp = tcp,
            Udp = udp,
        };
        return true;
    }

    /// <summary>Walks the extension area (docs/protocol.md §3 limits).</summary>
    internal static bool TryParseExtensions(
        ReadOnlySpan<byte> ext,
        out SalControl? control,
        out ServiceId? destination,
        out ServiceId? source,
        out SalSourceRoute? route,
        out SalPathProbe? probe,
        out SalKeyExchange? keyExchange,
        out SalPacketAuth? auth,
        out WireError error)
    {
        probe = null;
        keyExchange = null;
        auth = null;
        control = null;
        destination = null;
        source = null;
        route = null;
        var count = 0;
        var i = 0;
        while (i < ext.Length)
        {
            if (count == MaxExtensions)
            {
                error = WireError.TooManyExtensions;
                return false;
            }

            count++;
            var type = ext[i] >> 4;
            if (type == 0)
            {
                i++;
                continue;
            }

            if (i + 1 >= ext.Length)
            {
                error = WireError.BadExtensionLength;
                return false;
            }

            var len = ext[i + 1];
            if (len < 2 || i + len > ext.Length)
            {
                error = WireError.BadExtensionLength;
                return false;
            }

            var e = ext.Slice(i, len);
            switch (type)
            {
                case SalControl.Type:
                    if (len != SalControl.Length)
                    {
                        error = WireError.BadExtensionLength;
                        return false;
                    }

                    if (control.HasValue)
                    {
                        error = WireError.DuplicateControl;
                        return false;
                    }

                    control = SalControl.Read(e);
                    break;
                case ServiceType:
                    if (len != ServiceLength)
                    {
                        error = WireError.BadExtensionLength;
                        return false;
                    }

                    if (source.HasValue)
                    {
                        error = WireError.TooManyServices;
                        return false;
                    }

                    if (destination.HasValue)
                    {
                        source = ServiceId.Read(e[4..]);
                    }
                    else
                    {
                        destination = ServiceId.Read(e[4..]);
                    }

                    break;
                case 3: // ADDRESS: defined by the reference, never sent; parsed and ignored.
                    if (len < 12)
                    {
                        error = WireError.BadExtensionLength;
                        return false;
                    }

                    break;
                case SalSourceRoute.TypeV4:
                case SalSourceRoute.TypeV6:
                    if (route is not null)
                    {
                        error = WireError.DuplicateSource;
                        return false;
                    }

                    if (!SalSourceRoute.TryRead(e, type == SalSourceRoute.TypeV6, out route, out error))
                    {
                        return false;
                    }

                    break;
                case SalPathProbe.Type:
                    if (len != SalPathProbe.Length)
                    {
                        error = WireError.BadExtensionLength;
                        return false;
                    }

                    if (probe.HasValue)
                    {
                        error = WireError.DuplicatePathProbe;
                        return false;
                    }

                    probe = SalPathProbe.Read(e);
                    break;
                case SalKeyExchange.Type:
                    if (keyExchange is not null)
                    {
                        error = WireError.DuplicateKeyExchange;
                        return false;
                    }

                    if (len is not SalKeyExchange.ShortLength and not SalKeyExchange.ProofLength || !SalKeyExchange.TryRead(e, out keyExchange))
                    {
                        error = WireError.BadExtensionLength;
                        return false;
                    }

                    break;
                case SalPacketAuth.Type:
                    if (len != SalPacketAuth.Length)
                    {
                        error = WireError.BadExtensionLength;
                        return false;
                    }

                    if (auth.HasValue)
                    {
                        error = WireError.DuplicateAuth;
                        return false;
                    }

                    auth = SalPacketAuth.Read(e);
                    break;
                default:
                    error = WireError.UnknownExtension;
                    return false;
            }

            i += len;
        }

        error = WireError.None;
        return true;
    }

    /// <summary>
    /// Writes the packet with <paramref name="payload"/> into <paramref name="buffer"/>, computing the SAL checksum
    /// and the transport checksum over <paramref name="pseudoHeader"/>. Returns the packet length, or 0 when the
    /// buffer is too small.
    /// </summary>
    /// <exception cref="InvalidOperationException">The value is not a valid packet (unknown protocol, a source service without a destination service).</exception>
    public int Emit(Span<byte> buffer, ReadOnlySpan<byte> payload, in TransportPseudoHeader pseudoHeader)
    {
        var hl = EmitHeaders(buffer, payload.Length);
        if (hl == 0)
        {
            return 0;
        }

        payload.CopyTo(buffer[hl..]);
        var total = hl + payload.Length;
        FillTransportChecksum(buffer[..total], pseudoHeader);
        return total;
    }

    /// <summary>
    /// Writes SAL header and transport header for a payload of <paramref name="payloadLength"/> bytes that the caller
    /// places right after them (then calls <see cref="FillTransportChecksum(Span{byte}, in TransportPseudoHeader)"/>). Returns the header length, or 0 when
    /// the buffer cannot hold the whole packet.
    /// </summary>
    public int EmitHeaders(Span<byte> buffer, int payloadLength)
    {
        if (Protocol is not ProtocolTcp and not ProtocolUdp)
        {
            throw new InvalidOperationException($"SAL protocol must be 6 or 17, not {Protocol}.");
        }

        if (ControlOnly && payloadLength != 0)
        {
            throw new InvalidOperationException("A control-only packet has no transport header and so no payload.");
        }

        if (SourceService.HasValue && !DestinationService.HasValue)
        {
            throw new InvalidOperationException("A source SERVICE extension needs a destination SERVICE extension before it.");
        }

        var sal = SalHeaderLength;
        var hl = sal + TransportHeaderLength;
        if (buffer.Length < hl + payloadLength)
        {
            return 0;
        }

        BinaryPrimitives.WriteUInt32BigEndian(buffer, SourceFlow.Value);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[4..], DestinationFlow.Value);
        buffer[8] = (byte)(sal / 4);
        buffer[9] = Protocol;
        buffer[10] = 0;
        buffer[11] = 0;
        var o = SalHeaderView.BaseLength;
        if (Control is { } c)
        {
            o += c.Emit(buffer[o..]);
        }

        if (DestinationService is { } d)
        {
            o += EmitService(buffer[o..], d);
        }

        if (SourceService is { } s)
        {
            o += EmitService(buffer[o..], s);
        }

        if (SourceRoute is { } r)
        {
            o += r.Emit(buffer[o..]);
        }

        if (PathProbe is { } probe)
        {
            o += probe.Emit(buffer[o..]);
        }

        if (KeyExchange is { } keyx)
        {
            o += keyx.Emit(buffer[o..]);
        }

        if (Auth is { } auth)
        {
            o += auth.Emit(buffer[o..]);
        }

        BinaryPrimitives.WriteUInt16BigEndian(buffer[10..], InternetChecksum.Compute(buffer[..sal]));
        if (ControlOnly)
        {
            return hl;
        }

        if (Protocol == ProtocolTcp)
        {
            Tcp.Emit(buffer[sal..]);
        }
        else
        {
            Udp.Emit(buffer[sal..], payloadLength);
        }

        return hl;
    }

    /// <summary>Computes the transport checksum of an emitted packet (SAL header onward) in place.</summary>
    public void FillTransportChecksum(Span<byte> packet, in TransportPseudoHeader pseudoHeader)
    {
        var sal = packet[8] * 4;
        var segment = packet[sal..];
        if (ControlOnly || segment.IsEmpty)
        {
            return;
        }

        if (Protocol == ProtocolTcp)
        {
            if (TcpHeaderView.TryCreate(segment, out var tcp, out _))
            {
                tcp.FillChecksum(pseudoHeader);
            }
        }
        else if (Udp.HasChecksum)
        {
            UdpRepr.FillChecksum(segment[..(BinaryPrimitives.ReadUInt16BigEndian(segment[4..]))], pseudoHeader);
        }
    }

    /// <summary>
    /// As <see cref="FillTransportChecksum(Span{byte}, in TransportPseudoHeader)"/> for a packet whose payload, from
    /// <paramref name="payloadOffset"/> to the end, was placed with its running sum <paramref name="payloadSum"/>
    /// already computed (<see cref="InternetChecksum.CopyAndAdd"/>): only the headers are read again. The result is
    /// the same field, bit for bit. Packets other than TCP segments are summed whole.
    /// </summary>
    public void FillTransportChecksum(Span<byte> packet, in TransportPseudoHeader pseudoHeader, int payloadOffset, ulong payloadSum)
    {
        if (Protocol != ProtocolTcp || ControlOnly)
        {
            FillTransportChecksum(packet, pseudoHeader);
            return;
        }

        const int TcpMinHeaderLength = 20;
        var sal = packet[8] * 4;
        var segment = packet[sal..];
        if (segment.Length < TcpMinHeaderLength || payloadOffset < sal + TcpMinHeaderLength || payloadOffset > packet.Length || ((payloadOffset - sal) & 1) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(payloadOffset));
        }

        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], 0);
        var sum = InternetChecksum.Add(pseudoHeader.Sum(ProtocolTcp, segment.Length), packet[sal..payloadOffset]) + payloadSum;
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], InternetChecksum.Finish(sum));
    }

    /// <summary>
    /// Verifies the transport checksum of a packet (SAL header onward) that <see cref="TryParse"/> accepted.
    /// A UDP checksum of 0 means "not computed" and verifies.
    /// </summary>
    public static bool VerifyTransportChecksum(ReadOnlySpan<byte> packet, in TransportPseudoHeader pseudoHeader)
    {
        if (packet.Length < SalHeaderView.BaseLength)
        {
            return false;
        }

        var sal = packet[8] * 4;
        if (sal < SalHeaderView.BaseLength || sal > packet.Length)
        {
            return false;
        }

        var segment = packet[sal..];
        if (segment.IsEmpty)
        {
            return true; // Control-only packet: nothing to check.
        }

        if (packet[9] == ProtocolTcp)
        {
            return segment.Length >= TcpHeaderView.MinLength
                && InternetChecksum.Fold(InternetChecksum.Add(pseudoHeader.Sum(ProtocolTcp, segment.Length), segment)) == 0xFFFF;
        }

        if (segment.Length < UdpRepr.HeaderLength)
        {
            return false;
        }

        var ulen = BinaryPrimitives.ReadUInt16BigEndian(segment[4..]);
        return ulen >= UdpRepr.HeaderLength && ulen <= segment.Length && UdpRepr.VerifyChecksum(segment[..ulen], pseudoHeader);
    }

    private static int EmitService(Span<byte> b, ServiceId id)
    {
        b[0] = ServiceType << 4;
        b[1] = ServiceLength;
        b[2] = 0;
        b[3] = 0;
        id.WriteTo(b[4..]);
        return ServiceLength;
    }
}
