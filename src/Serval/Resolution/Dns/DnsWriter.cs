using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Serval.Resolution.Dns;

/// <summary>
/// Writes DNS messages: queries (RFC 1035, with an EDNS OPT record, RFC 6891) and dynamic updates (RFC 2136). Names
/// are written uncompressed; <see cref="IsValidName"/> says which names can be written.
/// </summary>
internal sealed class DnsWriter
{
    /// <summary>The UDP payload size advertised in EDNS (the DNS flag day 2020 value: no IP fragmentation).</summary>
    public const ushort EdnsPayloadSize = 1232;

    private readonly List<byte> _bytes = new(512);

    private DnsWriter()
    {
    }

    /// <summary>A query for <paramref name="name"/> / <paramref name="type"/> with recursion desired and an EDNS OPT record.</summary>
    /// <exception cref="ArgumentException">The name cannot be written (see <see cref="IsValidName"/>).</exception>
    public static byte[] Query(ushort id, string name, DnsType type, bool edns = true)
    {
        var w = new DnsWriter();
        w.Header(id, DnsOpcode.Query, recursionDesired: true, qd: 1, an: 0, ns: 0, ar: edns ? 1 : 0);
        w.Name(name);
        w.U16((ushort)type);
        w.U16((ushort)DnsClass.In);
        if (edns)
        {
            w.Opt();
        }

        return [.. w._bytes];
    }

    /// <summary>
    /// An UPDATE message (RFC 2136 §2) for <paramref name="zone"/> with no prerequisites: each change either adds an RR
    /// (class IN, with a TTL) or deletes the RR with exactly that data (class NONE, TTL 0), or — with empty data —
    /// deletes the whole RRset of that name and type (class ANY).
    /// </summary>
    /// <exception cref="ArgumentException">A name cannot be written or data is longer than 65535 bytes.</exception>
    public static byte[] Update(ushort id, string zone, IReadOnlyList<DnsChange> changes)
    {
        var w = new DnsWriter();
        w.Header(id, DnsOpcode.Update, recursionDesired: false, qd: 1, an: 0, ns: changes.Count, ar: 0);
        w.Name(zone);
        w.U16((ushort)DnsType.Soa);
        w.U16((ushort)DnsClass.In);
        foreach (var c in changes)
        {
            w.Name(c.Name);
            w.U16((ushort)c.Type);
            if (c.Kind == DnsChangeKind.Add)
            {
                w.U16((ushort)DnsClass.In);
                w.U32(c.Ttl);
                w.Data(c.Data);
            }
            else if (c.Kind == DnsChangeKind.Delete)
            {
                w.U16((ushort)DnsClass.None);
                w.U32(0);
                w.Data(c.Data);
            }
            else
            {
                w.U16((ushort)DnsClass.Any);
                w.U32(0);
                w.Data([]);
            }
        }

        return [.. w._bytes];
    }

    /// <summary>The data of an A or AAAA record for <paramref name="address"/>.</summary>
    public static byte[] AddressData(IPAddress address) =>
        (address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address).GetAddressBytes();

    /// <summary>The record type that holds <paramref name="address"/>.</summary>
    public static DnsType AddressType(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 && !address.IsIPv4MappedToIPv6 ? DnsType.Aaaa : DnsType.A;

    /// <summary>The data of an SRV record (RFC 2782): priority, weight, port, target (uncompressed).</summary>
    public static byte[] SrvData(ushort priority, ushort weight, ushort port, string target)
    {
        var w = new DnsWriter();
        w.U16(priority);
        w.U16(weight);
        w.U16(port);
        w.Name(target);
        return [.. w._bytes];
    }

    /// <summary>
    /// Whether <paramref name="name"/> can be written: dot-separated labels of 1–63 printable ASCII characters other
    /// than <c>\</c> (no escapes), at most 255 bytes in wire form; a trailing dot is allowed; the empty string is the root.
    /// </summary>
    public static bool IsValidName(string name)
    {
        if (name.EndsWith('.'))
        {
            name = name[..^1];
        }

        if (name.Length == 0)
        {
            return true;
        }

        if (name.Length + 2 > DnsMessage.MaxNameLength)
        {
            return false;
        }

        foreach (var label in name.Split('.'))
        {
            if (label.Length is 0 or > 63 || label.Any(c => c is <= ' ' or >= (char)0x7F or '\\'))
            {
                return false;
            }
        }

        return true;
    }

    private void Header(ushort id, DnsOpcode opcode, bool recursionDesired, int qd, int an, int ns, int ar)
    {
        U16(id);
        U16((ushort)(((int)opcode << 11) | (recursionDesired ? 0x0100 : 0)));
        U16((ushort)qd);
        U16((ushort)an);
        U16((ushort)ns);
        U16((ushort)ar);
    }

    private void Opt()
    {
        _bytes.Add(0); // root
        U16((ushort)DnsType.Opt);
        U16(EdnsPayloadSize);
        U32(0); // extended rcode 0, version 0, no DO bit
        U16(0);
    }

    private void Name(string name)
    {
        if (!IsValidName(name))
        {
            throw new ArgumentException($"'{name}' is not a DNS name this writer supports (labels of 1-63 printable ASCII characters, at most 255 bytes).", nameof(name));
        }

        foreach (var label in name.TrimEnd('.').Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            _bytes.Add((byte)label.Length);
            foreach (var c in label)
            {
                _bytes.Add((byte)c);
            }
        }

        _bytes.Add(0);
    }

    private void Data(byte[] data)
    {
        if (data.Length > ushort.MaxValue)
        {
            throw new ArgumentException("Record data longer than 65535 bytes.", nameof(data));
        }

        U16((ushort)data.Length);
        _bytes.AddRange(data);
    }

    private void U16(ushort v)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(b, v);
        _bytes.Add(b[0]);
        _bytes.Add(b[1]);
    }

    private void U32(uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        _bytes.AddRange(b);
    }
}

/// <summary>What an update change does (RFC 2136 §2.5).</summary>
internal enum DnsChangeKind
{
    /// <summary>Add an RR to an RRset.</summary>
    Add,

    /// <summary>Delete the RR with this data from its RRset.</summary>
    Delete,

    /// <summary>Delete the whole RRset of this name and type.</summary>
    DeleteRRset,
}

/// <summary>One change of an UPDATE message.</summary>
internal readonly record struct DnsChange(DnsChangeKind Kind, string Name, DnsType Type, uint Ttl, byte[] Data);
