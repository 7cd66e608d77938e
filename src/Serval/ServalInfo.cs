namespace Serval;

/// <summary>Facts about this build of Serval for .NET.</summary>
public static class ServalInfo
{
    /// <summary>The default UDP port a Serval host listens on and sends from (docs/protocol.md §1).</summary>
    public const int DefaultUdpPort = 54325;

    /// <summary>
    /// The link-scope IPv6 multicast group Serval hosts join for ad hoc discovery (docs/runtime.md, "Broadcast and
    /// discovery"): <c>ff02::5356</c> ("SV"), chosen by this project from the unassigned link-local range. UDP links over
    /// IPv6 send their broadcast default rule's SYNs and the router discovery messages to it.
    /// </summary>
    public static System.Net.IPAddress DiscoveryGroup { get; } = System.Net.IPAddress.Parse("ff02::5356");

    /// <summary>The IP protocol number that carries the SAL header on raw IP links.</summary>
    public const int IPProtocolNumber = 144;
}
