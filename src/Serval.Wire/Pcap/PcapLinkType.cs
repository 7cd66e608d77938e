namespace Serval.Wire.Pcap;

/// <summary>Link-layer header types of pcap records (tcpdump.org LINKTYPE_ values) this project reads and writes.</summary>
public enum PcapLinkType : ushort
{
    /// <summary>Ethernet II.</summary>
    Ethernet = 1,

    /// <summary>Raw IP (version from the first nibble).</summary>
    Raw = 101,

    /// <summary>Raw IPv4.</summary>
    IPv4 = 228,

    /// <summary>Raw IPv6.</summary>
    IPv6 = 229,
}
