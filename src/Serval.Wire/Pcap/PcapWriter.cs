using System.Buffers.Binary;

namespace Serval.Wire.Pcap;

/// <summary>
/// Writes classic libpcap files with nanosecond timestamps, one link type per file, readable by Wireshark and tshark.
/// Not thread-safe: one writer per file, callers serialise.
/// </summary>
public sealed class PcapWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly int _snapLength;
    private readonly byte[] _header = new byte[16];

    /// <summary>Creates a writer and writes the file header.</summary>
    public PcapWriter(Stream stream, PcapLinkType linkType, int snapLength = 262144, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(snapLength, 64);
        _stream = stream;
        _leaveOpen = leaveOpen;
        _snapLength = snapLength;
        LinkType = linkType;
        Span<byte> h = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0xA1B23C4D);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], (uint)snapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], (uint)linkType);
        _stream.Write(h);
    }

    /// <summary>The link type of every record.</summary>
    public PcapLinkType LinkType { get; }

    /// <summary>Number of records written.</summary>
    public long Count { get; private set; }

    /// <summary>Appends a packet captured at <paramref name="timestampNanoseconds"/> since the Unix epoch.</summary>
    public void Write(long timestampNanoseconds, ReadOnlySpan<byte> data)
    {
        var cap = Math.Min(data.Length, _snapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(_header, (uint)(timestampNanoseconds / 1_000_000_000));
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(4), (uint)(timestampNanoseconds % 1_000_000_000));
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(8), (uint)cap);
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(12), (uint)data.Length);
        _stream.Write(_header);
        _stream.Write(data[..cap]);
        Count++;
    }

    /// <summary>Flushes buffered records to the underlying stream.</summary>
    public void Flush() => _stream.Flush();

    /// <inheritdoc/>
    public void Dispose()
    {
        _stream.Flush();
        if (!_leaveOpen)
        {
            _stream.Dispose();
        }
    }
}
