namespace Serval.Wire.Pcap;

/// <summary>One captured packet.</summary>
/// <param name="Timestamp">Capture time as nanoseconds since the Unix epoch.</param>
/// <param name="LinkType">Link type of <paramref name="Data"/>.</param>
/// <param name="Data">The captured bytes (possibly truncated to the snap length).</param>
/// <param name="OriginalLength">Length of the packet on the wire.</param>
public sealed record PcapRecord(long Timestamp, PcapLinkType LinkType, byte[] Data, int OriginalLength);
