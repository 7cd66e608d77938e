namespace Serval;

/// <summary>Facts about this build of Serval for .NET.</summary>
public static class ServalInfo
{
    /// <summary>The default UDP port a Serval host listens on and sends from (docs/protocol.md §1).</summary>
    public const int DefaultUdpPort = 54325;

    /// <summary>The IP protocol number that carries the SAL header on raw IP links.</summary>
    public const int IPProtocolNumber = 144;
}
