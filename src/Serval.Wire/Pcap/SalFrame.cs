using System.Buffers.Binary;

namespace Serval.Wire.Pcap;

/// <summary>
/// Where the Serval packet sits inside a captured frame: the IP header, the optional UDP encapsulation header and
/// the SAL packet. Produced by <see cref="TryLocate"/> for Ethernet (with 802.1Q tags) and raw IP captures.
/// </summary>
public readonly record struct SalFrame
{
    /// <summary>The UDP ports on which SAL packets are carried by UDP encapsulation.</summary>
    public static readonly int[] EncapsulationPorts = [54324, 54325];

    /// <summary>Offset of the IP header in the frame.</summary>
    public int IPOffset { get; init; }

    /// <summary>Offset of the SAL header in the frame.</summary>
    public int SalOffset { get; init; }

    /// <summary>Length of the SAL packet (SAL header to the end of the IP payload).</summary>
    public int SalLength { get; init; }

    /// <summary>IP source (with the UDP source port when encapsulated).</summary>
    public LinkAddress Source { get; init; }

    /// <summary>IP destination (with the UDP destination port when encapsulated).</summary>
    public LinkAddress Destination { get; init; }

    /// <summary>IPv4 TTL or IPv6 hop limit.</summary>
    public byte Ttl { get; init; }

    /// <summary>Whether the SAL packet was carried in UDP.</summary>
    public bool UdpEncapsulated { get; init; }

    /// <summary>The pseudo-header the SAL packet's transport checksum uses.</summary>
    public TransportPseudoHeader PseudoHeader => TransportPseudoHeader.ForLink(Source, Destination);

    /// <summary>Finds the SAL packet in a frame; false when the frame carries no Serval packet.</summary>
    public static bool TryLocate(PcapLinkType linkType, ReadOnlySpan<byte> frame, out SalFrame located)
    {
        located = default;
        var ip = 0;
        if (linkType == PcapLinkType.Ethernet)
        {
            if (frame.Length < 14)
            {
                return false;
            }

            var etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
            ip = 14;
            while (etherType is 0x8100 or 0x88A8 && frame.Length >= ip + 4)
            {
                etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[(ip + 2)..]);
                ip += 4;
            }

            if (etherType is not 0x0800 and not 0x86DD)
            {
                return false;
            }
        }
        else if (linkType is not PcapLinkType.Raw and not PcapLinkType.IPv4 and not PcapLinkType.IPv6)
        {
            return false;
        }

        var p = frame[ip..];
        if (p.IsEmpty)
        {
            return false;
        }

        LinkAddress src, dst;
        byte proto, ttl;
        int hl, len;
        if (p[0] >> 4 == 4)
        {
            if (!Ipv4Repr.TryParse(p, out var v4, out hl, out len, out _) || v4.IsFragment)
            {
                return false;
            }

            (src, dst, proto, ttl) = (v4.Source, v4.Destination, v4.Protocol, v4.Ttl);
        }
        else if (p[0] >> 4 == 6)
        {
            if (!Ipv6Repr.TryParse(p, out var v6, out len, out _))
            {
                return false;
            }

            hl = Ipv6Repr.HeaderLength;
            (src, dst, proto, ttl) = (v6.Source, v6.Destination, v6.NextHeader, v6.HopLimit);
        }
        else
        {
            return false;
        }

        var sal = ip + hl;
        var encapsulated = false;
        if (proto == 17)
        {
            if (len < 8)
            {
                return false;
            }

            var udp = frame[sal..];
            var sport = BinaryPrimitives.ReadUInt16BigEndian(udp);
            var dport = BinaryPrimitives.ReadUInt16BigEndian(udp[2..]);
            if (Array.IndexOf(EncapsulationPorts, (int)sport) < 0 && Array.IndexOf(EncapsulationPorts, (int)dport) < 0)
            {
                return false;
            }

            src = src.WithPort(sport);
            dst = dst.WithPort(dport);
            sal += 8;
            len -= 8;
            encapsulated = true;
        }
        else if (proto != 144)
        {
            return false;
        }

        located = new SalFrame
        {
            IPOffset = ip,
            SalOffset = sal,
            SalLength = len,
            Source = src,
            Destination = dst,
            Ttl = ttl,
            UdpEncapsulated = encapsulated,
        };
        return true;
    }
}
