using System.Buffers.Binary;

namespace Serval.Wire.Pcap;

/// <summary>
/// Reads capture files: classic libpcap (microsecond or nanosecond, either byte order) and pcapng (section header,
/// interface description with <c>if_tsresol</c>, enhanced and simple packet blocks; other blocks are skipped).
/// Malformed files raise <see cref="InvalidDataException"/> naming the problem and offset.
/// </summary>
public sealed class PcapReader : IDisposable
{
    private const uint ClassicMicro = 0xA1B2C3D4;
    private const uint ClassicNano = 0xA1B23C4D;
    private const uint NgSectionHeader = 0x0A0D0D0A;
    private const uint NgByteOrderMagic = 0x1A2B3C4D;
    private const int MaxBlock = 16 * 1024 * 1024;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly bool _ng;
    private readonly List<(PcapLinkType LinkType, long UnitsPerSecond)> _interfaces = [];
    private bool _bigEndian;
    private PcapLinkType _classicLinkType;
    private long _classicUnitsPerSecond;
    private long _offset;

    /// <summary>Opens a reader over <paramref name="stream"/> and reads the file header.</summary>
    /// <exception cref="InvalidDataException">The stream is not a pcap or pcapng file.</exception>
    public PcapReader(Stream stream, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        _leaveOpen = leaveOpen;
        Span<byte> head = stackalloc byte[4];
        if (!ReadExactly(head))
        {
            throw new InvalidDataException("Empty file: not a pcap or pcapng capture.");
        }

        var le = BinaryPrimitives.ReadUInt32LittleEndian(head);
        if (le == NgSectionHeader)
        {
            _ng = true;
            ReadSectionHeaderRest();
            return;
        }

        var rest = new byte[20];
        if (!ReadExactly(rest))
        {
            throw new InvalidDataException("Truncated pcap file header.");
        }

        var be = BinaryPrimitives.ReadUInt32BigEndian(head);
        if (le == ClassicMicro || le == ClassicNano)
        {
            _bigEndian = false;
            _classicUnitsPerSecond = le == ClassicNano ? 1_000_000_000 : 1_000_000;
        }
        else if (be == ClassicMicro || be == ClassicNano)
        {
            _bigEndian = true;
            _classicUnitsPerSecond = be == ClassicNano ? 1_000_000_000 : 1_000_000;
        }
        else
        {
            throw new InvalidDataException($"Unknown capture magic 0x{be:x8}: not a pcap or pcapng file.");
        }

        _classicLinkType = (PcapLinkType)(ReadU32(rest.AsSpan(16)) & 0xFFFF);
    }

    /// <summary>Reads every record of a capture (callers open files: Serval.Wire does no file I/O).</summary>
    /// <param name="stream">The capture; disposed at the end unless <paramref name="leaveOpen"/>.</param>
    /// <param name="leaveOpen">Whether <paramref name="stream"/> stays open.</param>
    public static List<PcapRecord> ReadAll(Stream stream, bool leaveOpen = false)
    {
        using var r = new PcapReader(stream, leaveOpen);
        var list = new List<PcapRecord>();
        while (r.TryRead(out var rec))
        {
            list.Add(rec);
        }

        return list;
    }

    /// <summary>Reads the next packet record; false at the end of the file.</summary>
    /// <exception cref="InvalidDataException">The file is malformed.</exception>
    public bool TryRead(out PcapRecord record) => _ng ? TryReadNg(out record) : TryReadClassic(out record);

    private bool TryReadClassic(out PcapRecord record)
    {
        record = null!;
        Span<byte> h = stackalloc byte[16];
        var start = _offset;
        var n = _stream.ReadAtLeast(h, h.Length, throwOnEndOfStream: false);
        _offset += n;
        if (n == 0)
        {
            return false;
        }

        if (n < 16)
        {
            throw new InvalidDataException($"Truncated pcap record header at offset {start}.");
        }

        long sec = ReadU32(h);
        long frac = ReadU32(h[4..]);
        var incl = ReadU32(h[8..]);
        var orig = ReadU32(h[12..]);
        if (incl > MaxBlock)
        {
            throw new InvalidDataException($"pcap record at offset {start} claims {incl} bytes.");
        }

        var data = new byte[incl];
        if (!ReadExactly(data))
        {
            throw new InvalidDataException($"Truncated pcap record data at offset {start}.");
        }

        var ns = (sec * 1_000_000_000) + (frac * (1_000_000_000 / _classicUnitsPerSecond));
        record = new PcapRecord(ns, _classicLinkType, data, (int)Math.Min(orig, int.MaxValue));
        return true;
    }

    private void ReadSectionHeaderRest()
    {
        // Block total length, byte-order magic, version, section length, options.
        Span<byte> h = stackalloc byte[8];
        if (!ReadExactly(h))
        {
            throw new InvalidDataException("Truncated pcapng section header.");
        }

        var magic = BinaryPrimitives.ReadUInt32LittleEndian(h[4..]);
        if (magic == NgByteOrderMagic)
        {
            _bigEndian = false;
        }
        else if (BinaryPrimitives.ReadUInt32BigEndian(h[4..]) == NgByteOrderMagic)
        {
            _bigEndian = true;
        }
        else
        {
            throw new InvalidDataException("Bad pcapng byte-order magic.");
        }

        var total = ReadU32(h);
        if (total < 28 || total > MaxBlock || total % 4 != 0)
        {
            throw new InvalidDataException($"Bad pcapng section header length {total}.");
        }

        var rest = new byte[total - 12];
        if (!ReadExactly(rest))
        {
            throw new InvalidDataException("Truncated pcapng section header.");
        }

        _interfaces.Clear();
    }

    private bool TryReadNg(out PcapRecord record)
    {
        record = null!;
        Span<byte> h = stackalloc byte[8];
        while (true)
        {
            var start = _offset;
            var n = _stream.ReadAtLeast(h, h.Length, throwOnEndOfStream: false);
            _offset += n;
            if (n == 0)
            {
                return false;
            }

            if (n < 8)
            {
                throw new InvalidDataException($"Truncated pcapng block header at offset {start}.");
            }

            if (BinaryPrimitives.ReadUInt32LittleEndian(h) == NgSectionHeader)
            {
                // A new section: re-read the byte order and forget interfaces.
                var magicAndRest = new byte[4];
                if (!ReadExactly(magicAndRest))
                {
                    throw new InvalidDataException($"Truncated pcapng section header at offset {start}.");
                }

                var bo = BinaryPrimitives.ReadUInt32LittleEndian(magicAndRest);
                _bigEndian = bo != NgByteOrderMagic;
                var t = ReadU32(h[4..]);
                if (t < 28 || t > MaxBlock || t % 4 != 0)
                {
                    throw new InvalidDataException($"Bad pcapng section header length {t} at offset {start}.");
                }

                var skip = new byte[t - 12];
                if (!ReadExactly(skip))
                {
                    throw new InvalidDataException($"Truncated pcapng section header at offset {start}.");
                }

                _interfaces.Clear();
                continue;
            }

            var type = ReadU32(h);
            var total = ReadU32(h[4..]);
            if (total < 12 || total > MaxBlock || total % 4 != 0)
            {
                throw new InvalidDataException($"Bad pcapng block length {total} at offset {start}.");
            }

            var body = new byte[total - 8];
            if (!ReadExactly(body))
            {
                throw new InvalidDataException($"Truncated pcapng block at offset {start}.");
            }

            var b = body.AsSpan(0, body.Length - 4);
            switch (type)
            {
                case 1: // Interface description
                    if (b.Length < 8)
                    {
                        throw new InvalidDataException($"Short pcapng interface block at offset {start}.");
                    }

                    _interfaces.Add(((PcapLinkType)ReadU16(b), ReadTsResolution(b[8..])));
                    break;
                case 6: // Enhanced packet
                    {
                        if (b.Length < 20)
                        {
                            throw new InvalidDataException($"Short pcapng packet block at offset {start}.");
                        }

                        var iface = ReadU32(b);
                        if (iface >= (uint)_interfaces.Count)
                        {
                            throw new InvalidDataException($"pcapng packet at offset {start} names unknown interface {iface}.");
                        }

                        var ts = ((ulong)ReadU32(b[4..]) << 32) | ReadU32(b[8..]);
                        var cap = ReadU32(b[12..]);
                        var orig = ReadU32(b[16..]);
                        if (cap > b.Length - 20)
                        {
                            throw new InvalidDataException($"pcapng packet at offset {start} overruns its block.");
                        }

                        var (lt, units) = _interfaces[(int)iface];
                        record = new PcapRecord(ToNanoseconds(ts, units), lt, b.Slice(20, (int)cap).ToArray(), (int)Math.Min(orig, int.MaxValue));
                        return true;
                    }

                case 3: // Simple packet
                    {
                        if (b.Length < 4 || _interfaces.Count == 0)
                        {
                            throw new InvalidDataException($"Bad pcapng simple packet block at offset {start}.");
                        }

                        var orig = ReadU32(b);
                        var cap = (int)Math.Min(orig, (uint)(b.Length - 4));
                        record = new PcapRecord(0, _interfaces[0].LinkType, b.Slice(4, cap).ToArray(), (int)Math.Min(orig, int.MaxValue));
                        return true;
                    }

                default:
                    break; // Statistics, name resolution, custom blocks: skipped.
            }
        }
    }

    private long ReadTsResolution(ReadOnlySpan<byte> options)
    {
        long units = 1_000_000;
        var i = 0;
        while (i + 4 <= options.Length)
        {
            var code = ReadU16(options[i..]);
            var len = ReadU16(options[(i + 2)..]);
            if (code == 0 || i + 4 + len > options.Length)
            {
                break;
            }

            if (code == 9 && len >= 1)
            {
                var v = options[i + 4];
                var exp = v & 0x7F;
                if (exp <= 18)
                {
                    units = (v & 0x80) != 0 ? 1L << Math.Min(exp, 62) : (long)Math.Pow(10, exp);
                }
            }

            i += 4 + ((len + 3) & ~3);
        }

        return units;
    }

    private static long ToNanoseconds(ulong ticks, long unitsPerSecond)
    {
        var ns = (UInt128)ticks * 1_000_000_000UL / (ulong)Math.Max(unitsPerSecond, 1);
        return ns > long.MaxValue ? long.MaxValue : (long)ns;
    }

    private uint ReadU32(ReadOnlySpan<byte> b) => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b);

    private ushort ReadU16(ReadOnlySpan<byte> b) => _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(b) : BinaryPrimitives.ReadUInt16LittleEndian(b);

    private bool ReadExactly(Span<byte> b)
    {
        var n = _stream.ReadAtLeast(b, b.Length, throwOnEndOfStream: false);
        _offset += n;
        return n == b.Length;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_leaveOpen)
        {
            _stream.Dispose();
        }
    }
}
