using System.Buffers.Binary;

namespace Serval.Perf;

/// <summary>
/// What client and server say to each other. A stream flow starts with a <see cref="HelloLength"/>-byte hello (magic,
/// mode, flow count, flow index, test id), then data until the client closes its side; the server answers with a
/// <see cref="ReportLength"/>-byte report (magic, payload bytes received) and closes. A datagram flow sends data
/// datagrams (type, sequence number, padding), then end datagrams (type and the hello fields) until the server's report
/// datagram (type, datagrams and bytes received) arrives. A connect-rate probe (<c>serval-perf connect-rate</c>) sends
/// nothing, or the single byte <see cref="ProbeByte"/> (never the first byte of a hello), which the server echoes; the
/// client then closes.
/// </summary>
internal static class PerfProtocol
{
    public const uint Magic = 0x53_50_52_46; // "SPRF"
    public const int HelloLength = 24;
    public const int ReportLength = 24;
    public const int DataHeaderLength = 9;
    public const byte ModeStream = 1;
    public const byte ModeDatagram = 2;
    public const byte TypeData = 1;
    public const byte TypeEnd = 2;
    public const byte TypeReport = 3;

    /// <summary>The byte a connect-rate probe sends and the server echoes.</summary>
    public const byte ProbeByte = 0xC5;

    public readonly record struct Hello(byte Mode, int Flows, int FlowIndex, ulong TestId);

    public static void WriteHello(Span<byte> b, Hello h)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, Magic);
        b[4] = h.Mode;
        b[5] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(b[6..], (ushort)h.Flows);
        BinaryPrimitives.WriteUInt16BigEndian(b[8..], (ushort)h.FlowIndex);
        BinaryPrimitives.WriteUInt16BigEndian(b[10..], 0);
        BinaryPrimitives.WriteUInt64BigEndian(b[12..], h.TestId);
        BinaryPrimitives.WriteUInt32BigEndian(b[20..], 0);
    }

    public static bool TryReadHello(ReadOnlySpan<byte> b, out Hello h)
    {
        h = default;
        if (b.Length < HelloLength || BinaryPrimitives.ReadUInt32BigEndian(b) != Magic)
        {
            return false;
        }

        h = new Hello(b[4], BinaryPrimitives.ReadUInt16BigEndian(b[6..]), BinaryPrimitives.ReadUInt16BigEndian(b[8..]), BinaryPrimitives.ReadUInt64BigEndian(b[12..]));
        return h.Mode is ModeStream or ModeDatagram && h.Flows is >= 1 and <= 64 && h.FlowIndex < h.Flows;
    }

    public static void WriteReport(Span<byte> b, long datagrams, long bytes)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], 0);
        BinaryPrimitives.WriteInt64BigEndian(b[8..], datagrams);
        BinaryPrimitives.WriteInt64BigEndian(b[16..], bytes);
    }

    public static bool TryReadReport(ReadOnlySpan<byte> b, out long datagrams, out long bytes)
    {
        datagrams = bytes = 0;
        if (b.Length < ReportLength || BinaryPrimitives.ReadUInt32BigEndian(b) != Magic)
        {
            return false;
        }

        datagrams = BinaryPrimitives.ReadInt64BigEndian(b[8..]);
        bytes = BinaryPrimitives.ReadInt64BigEndian(b[16..]);
        return datagrams >= 0 && bytes >= 0;
    }
}
