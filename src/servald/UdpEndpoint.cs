namespace Serval.Daemon;

/// <summary>One UDP link of servald: a specific local address and a port.</summary>
internal sealed class UdpEndpoint
{
    /// <summary>Local address (not a wildcard).</summary>
    public string Address { get; set; } = "127.0.0.1";

    /// <summary>UDP port (0 picks a free one).</summary>
    public int Port { get; set; } = ServalInfo.DefaultUdpPort;
}
