using Serval.Links;

namespace Serval.Daemon;

/// <summary>
/// One <c>Serval:LinkPolicies</c> entry: links that follow the host's addresses (<see cref="LinkPolicy"/>;
/// docs/servald.md, "Links that follow addresses").
/// </summary>
internal sealed class LinkPolicySettings
{
    /// <summary><c>Udp</c> (default) or <c>RawIp</c>.</summary>
    public LinkKind Kind { get; set; } = LinkKind.Udp;

    /// <summary>The UDP port (default 54325; 0 picks a free one per link).</summary>
    public int Port { get; set; } = ServalInfo.DefaultUdpPort;

    /// <summary>Links for IPv4 addresses (default true).</summary>
    public bool IPv4 { get; set; } = true;

    /// <summary>Links for IPv6 addresses (default true).</summary>
    public bool IPv6 { get; set; } = true;

    /// <summary>Also link-local addresses (default false).</summary>
    public bool LinkLocal { get; set; }

    /// <summary>Also loopback addresses and loopback interfaces (default false).</summary>
    public bool Loopback { get; set; }

    /// <summary>Interface names (a trailing <c>*</c> matches a prefix); empty: every interface.</summary>
    public List<string> Interfaces { get; set; } = [];

    /// <summary>The policy these settings describe.</summary>
    public LinkPolicy ToPolicy() => new()
    {
        Kind = Kind,
        Port = Port,
        IPv4 = IPv4,
        IPv6 = IPv6,
        IncludeLinkLocal = LinkLocal,
        IncludeLoopback = Loopback,
        Interfaces = [.. Interfaces],
    };
}
