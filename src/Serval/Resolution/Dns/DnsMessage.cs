using System.Buffers.Binary;
using System.Net;
using System.Text;

namespace Serval.Resolution.Dns;

/// <summary>DNS record types the resolver reads or writes (RFC 1035, 3596, 2782, 6891).</summary>
internal enum DnsType : ushort
{
    A = 1,
    NS = 2,
    CName = 5,
    Soa = 6,
    Txt = 16,
    Aaaa = 28,
    Srv = 33,
    Opt = 41,
    Any = 255,
}

/// <summary>DNS classes (RFC 1035; NONE and ANY as RFC 2136 uses them).</summary>
internal enum DnsClass : ushort
{
    In = 1,
    None = 254,
    Any = 255,
}

/// <summary>DNS opcodes.</summary>
internal enum DnsOpcode : byte
{
    Query = 0,
    Update = 5,
}

/// <summary>Response codes (RFC 1035, 2136).</summary>
internal enum DnsResponseCode : byte
{
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NXDomain = 3,
    NotImp = 4,
    Refused = 5,
    YXDomain = 6,
    YXRRSet = 7,
    NXRRSet = 8,
    NotAuth = 9,
    NotZone = 10,
}

/// <summary>One question.</summary>
internal readonly record struct DnsQuestion(string Name, DnsType Type, DnsClass Class = DnsClass.In);

/// <summary>An SRV record's data (RFC 2782).</summary>
internal readonly record struct DnsSrv(ushort Priority, ushort Weight, ushort Port, string Target);

/// <summary>
/// One resource record. The data is kept raw; the typed accessors decode it (names inside SRV, CNAME and SOA data were
/// decompressed when the message was parsed).
/// </summary>
internal sealed record DnsRecord(string Name, DnsType Type, DnsClass Class, uint Ttl, byte[] Data)
{
    /// <summary>A record's decoded target name (CNAME), SRV fields, or SOA minimum; set by the parser.</summary>
    public string? CNameTarget { get; init; }

    /// <summary>SRV fields (SRV records only).</summary>
    public DnsSrv? Srv { get; init; }

    /// <summary>The SOA MINIMUM field (SOA records only): the negative-caching TTL of the zone (RFC 2308).</summary>
    public uint? SoaMinimum { get; init; }

    /// <summary>The address of an A or AAAA record; null for other types.</summary>
    public IPAddress? Address => Type switch
    {
        DnsType.A when Data.Length == 4 => new IPAddress(Data),
        DnsType.Aaaa when Data.Length == 16 => new IPAddress(Data),
        _ => null,
    };
}

/// <summary>
/// A parsed DNS message (RFC 1035 §4). <see cref="TryParse"/> reads untrusted bytes: every length and offset is checked,
/// compression pointers must point strictly backwards (so they cannot loop) and at most <see cref="MaxPointers"/> are
/// followed per name, names are at most 255 bytes, and at most <see cref="MaxRecords"/> records are read. It never
/// throws on malformed input; it returns false with a reason.
/// </summary>
internal sealed class DnsMessage
{
    /// <summary>Most records of all sections read from one message (more: malformed).</summary>
    public const int MaxRecords = 512;

    /// <summary>Most compression pointers followed in one name.</summary>
    public const int MaxPointers = 32;

    /// <summary>Longest name in wire form (RFC 1035 §2.3.4).</summary>
    public const int MaxNameLength = 255;

    public const int HeaderLength = 12;

    public ushort Id { get; init; }

    public bool IsResponse { get; init; }

    public DnsOpcode Opcode { get; init; }

    public bool Authoritative { get; init; }

    public bool Truncated { get; init; }

    public bool RecursionDesired { get; init; }

    public bool RecursionAvailable { get; init; }

    /// <summary>The response code, with the EDNS extended bits when an OPT record carries them.</summary>
    public DnsResponseCode ResponseCode { get; init; }

    public IReadOnlyList<DnsQuestion> Questions { get; init; } = [];

    public IReadOnlyList<DnsRecord> Answers { get; init; } = [];

    public IReadOnlyList<DnsRecord> Authority { get; init; } = [];

    public IReadOnlyList<DnsRecord> Additional { get; init; } = [];

    /// <summary>Parses a whole message. False (with <paramref name="error"/>) for anything malformed; never throws.</summary>
    public static bool TryParse(ReadOnlySpan<byte> data, out DnsMessage? message, out string? error)
    {
        message = null;
        if (data.Length < HeaderLength)
        {
            error = "shorter than a DNS header";
            return false;
        }

        if (data.Length > ushort.MaxValue)
        {
            error = "longer than 65535 bytes";
            return false;
        }

        var id = BinaryPrimitives.ReadUInt16BigEndian(data);
        var flags = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
        int qd = BinaryPrimitives.ReadUInt16BigEndian(data[4..]);
        int an = BinaryPrimitives.ReadUInt16BigEndian(data[6..]);
        int ns = BinaryPrimitives.ReadUInt16BigEndian(data[8..]);
        int ar = BinaryPrimitives.ReadUInt16BigEndian(data[10..]);
        if (qd + an + ns + ar > MaxRecords)
        {
            error = $"{qd + an + ns + ar} entries (more than {MaxRecords})";
            return false;
        }

        var offset = HeaderLength;
        var questions = new List<DnsQuestion>(qd);
        for (var i = 0; i < qd; i++)
        {
            if (!TryReadName(data, ref offset, out var name, out error))
            {
                return false;
            }

            if (offset + 4 > data.Length)
            {
                error = "question truncated";
                return false;
            }

            questions.Add(new DnsQuestion(name, (DnsType)BinaryPrimitives.ReadUInt16BigEndian(data[offset..]), (DnsClass)BinaryPrimitives.ReadUInt16BigEndian(data[(offset + 2)..])));
            offset += 4;
        }

        var rcode = flags & 0xF;
        var sections = new List<DnsRecord>[3];
        int[] counts = [an, ns, ar];
        for (var s = 0; s < 3; s++)
        {
            sections[s] = new List<DnsRecord>(counts[s]);
            for (var i = 0; i < counts[s]; i++)
            {
                if (!TryReadRecord(data, ref offset, out var record, out error))
                {
                    return false;
                }

                if (record.Type == DnsType.Opt)
                {
                    // EDNS (RFC 6891): the TTL field's top byte extends the response code.
                    rcode |= (int)(record.Ttl >> 24) << 4;
                }

                sections[s].Add(record);
            }
        }

        // Trailing bytes after the last record are tolerated (some servers pad); the counts said what to read.
        message = new DnsMessage
        {
            Id = id,
            IsResponse = (flags & 0x8000) != 0,
            Opcode = (DnsOpcode)((flags >> 11) & 0xF),
            Authoritative = (flags & 0x0400) != 0,
            Truncated = (flags & 0x0200) != 0,
            RecursionDesired = (flags & 0x0100) != 0,
            RecursionAvailable = (flags & 0x0080) != 0,
            ResponseCode = (DnsResponseCode)Math.Min(rcode, 255),
            Questions = questions,
            Answers = sections[0],
            Authority = sections[1],
            Additional = sections[2],
        };
        error = null;
        return true;
    }

    private static bool TryReadRecord(ReadOnlySpan<byte> data, ref int offset, out DnsRecord record, out string? error)
    {
        record = null!;
        if (!TryReadName(data, ref offset, out var name, out error))
        {
            return false;
        }

        if (offset + 10 > data.Length)
        {
            error = "record header truncated";
            return false;
        }

        var type = (DnsType)BinaryPrimitives.ReadUInt16BigEndian(data[offset..]);
        var cls = (DnsClass)BinaryPrimitives.ReadUInt16BigEndian(data[(offset + 2)..]);
        var ttl = BinaryPrimitives.ReadUInt32BigEndian(data[(offset + 4)..]);
        int length = BinaryPrimitives.ReadUInt16BigEndian(data[(offset + 8)..]);
        offset += 10;
        if (offset + length > data.Length)
        {
            error = $"record data of {length} bytes runs past the end";
            return false;
        }

        var rdataStart = offset;
        var rdata = data.Slice(offset, length);
        offset += length;
        record = new DnsRecord(name, type, cls, ttl, rdata.ToArray());
        if (length == 0 && cls != DnsClass.In)
        {
            error = null;
            return true; // an update's "delete an RRset" (class ANY) or a prerequisite: no data to decode
        }

        switch (type)
        {
            case DnsType.A when length != 4:
            case DnsType.Aaaa when length != 16:
                error = $"{type} record with {length} bytes of data";
                return false;
            case DnsType.CName:
                {
                    var at = rdataStart;
                    if (!TryReadName(data, ref at, out var target, out error) || at != rdataStart + length)
                    {
                        error ??= "CNAME data longer than its name";
                        return false;
                    }

                    record = record with { CNameTarget = target };
                    break;
                }

            case DnsType.Srv:
                {
                    if (length < 7)
                    {
                        error = "SRV record too short";
                        return false;
                    }

                    var at = rdataStart + 6;
                    if (!TryReadName(data, ref at, out var target, out error) || at != rdataStart + length)
                    {
                        error ??= "SRV data longer than its target";
                        return false;
                    }

                    record = record with
                    {
                        Srv = new DnsSrv(BinaryPrimitives.ReadUInt16BigEndian(rdata), BinaryPrimitives.ReadUInt16BigEndian(rdata[2..]), BinaryPrimitives.ReadUInt16BigEndian(rdata[4..]), target),
                    };
                    break;
                }

            case DnsType.Soa:
                {
                    var at = rdataStart;
                    if (!TryReadName(data, ref at, out _, out error) || !TryReadName(data, ref at, out _, out error))
                    {
                        return false;
                    }

                    if (at + 20 != rdataStart + length)
                    {
                        error = "SOA data of the wrong length";
                        return false;
                    }

                    record = record with { SoaMinimum = BinaryPrimitives.ReadUInt32BigEndian(data[(at + 16)..]) };
                    break;
                }
        }

        error = null;
        return true;
    }

    /// <summary>
    /// Reads a (possibly compressed) name at <paramref name="offset"/> and advances past it. Labels are text with
    /// <c>.</c>, <c>\</c> and bytes outside printable ASCII escaped as <c>\DDD</c>; the root is the empty string.
    /// </summary>
    internal static bool TryReadName(ReadOnlySpan<byte> data, ref int offset, out string name, out string? error)
    {
        name = string.Empty;
        var text = new StringBuilder();
        var at = offset;
        var end = -1; // where the caller continues: after the first pointer, or after the terminating zero
        var runStart = offset; // a pointer must point before the run of labels it ends: strictly decreasing, no loop
        var wireLength = 1;
        var pointers = 0;
        while (true)
        {
            if (at >= data.Length)
            {
                error = "name runs past the end";
                return false;
            }

            int b = data[at];
            if ((b & 0xC0) == 0xC0)
            {
                if (at + 1 >= data.Length)
                {
                    error = "compression pointer truncated";
                    return false;
                }

                var target = ((b & 0x3F) << 8) | data[at + 1];
                if (target >= runStart || ++pointers > MaxPointers)
                {
                    error = "compression pointer loop (a pointer must point before its name)";
                    return false;
                }

                if (end < 0)
                {
                    end = at + 2;
                }

                at = target;
                runStart = target;
                continue;
            }

            if ((b & 0xC0) != 0)
            {
                error = $"label type 0x{b & 0xC0:x2} not supported";
                return false;
            }

            if (b == 0)
            {
                offset = end < 0 ? at + 1 : end;
                name = text.ToString();
                error = null;
                return true;
            }

            wireLength += b + 1;
            if (wireLength > MaxNameLength)
            {
                error = "name longer than 255 bytes";
                return false;
            }

            if (at + 1 + b > data.Length)
            {
                error = "label runs past the end";
                return false;
            }

            if (text.Length > 0)
            {
                text.Append('.');
            }

            foreach (var c in data.Slice(at + 1, b))
            {
                if (c is (byte)'.' or (byte)'\\')
                {
                    text.Append('\\').Append((char)c);
                }
                else if (c is > 0x20 and < 0x7F)
                {
                    text.Append((char)c);
                }
                else
                {
                    text.Append('\\').Append(c.ToString("D3", System.Globalization.CultureInfo.InvariantCulture));
                }
            }

            at += 1 + b;
        }
    }

    /// <summary>Whether two names are the same (ASCII case-insensitive, trailing dot ignored).</summary>
    public static bool SameName(string a, string b) =>
        string.Equals(a.TrimEnd('.'), b.TrimEnd('.'), StringComparison.OrdinalIgnoreCase);
}
