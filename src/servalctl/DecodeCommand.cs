using System.Globalization;
using Serval.Wire;
using Serval.Wire.Pcap;

namespace Serval.Cli;

/// <summary><c>servalctl decode [FILE]</c>: prints every Serval packet of a capture in readable form.</summary>
internal static class DecodeCommand
{
    public static int Run(string? path, TextWriter output, TextWriter error)
    {
        Stream stream;
        string name;
        if (path is null)
        {
            stream = typeof(DecodeCommand).Assembly.GetManifestResourceStream("sample.pcap")
                ?? throw new InvalidOperationException("The embedded sample capture is missing from this build.");
            name = "embedded sample (reference stream transfer, tcp_basic.pcap)";
        }
        else
        {
            if (!File.Exists(path))
            {
                error.WriteLine($"servalctl decode: no such file: {path}");
                return 1;
            }

            stream = File.OpenRead(path);
            name = path;
        }

        using var reader = CreateReader(stream, path, error);
        if (reader is null)
        {
            return 1;
        }

        output.WriteLine($"# {name}");
        var frame = 0;
        var serval = 0;
        var bad = 0;
        long first = -1;
        try
        {
            while (reader.TryRead(out var rec))
            {
                frame++;
                if (!SalFrame.TryLocate(rec.LinkType, rec.Data, out var f))
                {
                    continue;
                }

                serval++;
                if (first < 0)
                {
                    first = rec.Timestamp;
                }

                var t = (rec.Timestamp - first) / 1e9;
                var sal = rec.Data.AsSpan(f.SalOffset, f.SalLength);
                var encap = f.UdpEncapsulated ? " udp" : string.Empty;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"#{frame} {t:F6}s {f.Source} -> {f.Destination}{encap} ttl={f.Ttl} len={f.SalLength}"));
                if (SalPacketRepr.TryParse(sal, out var p, out _, out var payloadLength, out var why))
                {
                    var ok = SalPacketRepr.VerifyTransportChecksum(sal, f.PseudoHeader);
                    output.WriteLine("  " + SalPacketFormatter.Format(p, payloadLength, ok).Replace("\n", "\n  ", StringComparison.Ordinal));
                }
                else
                {
                    bad++;
                    output.WriteLine($"  malformed SAL packet: {why}");
                }
            }
        }
        catch (InvalidDataException e)
        {
            error.WriteLine($"servalctl decode: {e.Message}");
            return 1;
        }

        output.WriteLine($"# {serval} Serval packets in {frame} frames, {bad} malformed");
        return 0;
    }

    private static PcapReader? CreateReader(Stream stream, string? path, TextWriter error)
    {
        try
        {
            return new PcapReader(stream);
        }
        catch (InvalidDataException e)
        {
            stream.Dispose();
            error.WriteLine($"servalctl decode: {path}: {e.Message}");
            return null;
        }
    }
}
