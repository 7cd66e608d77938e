using System.CommandLine;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using Serval.Wire;

namespace Serval.Tools;

/// <summary>
/// The link options serval-cat and serval-translate share (one source file compiled into both): <c>--udp
/// ADDRESS[:PORT]</c> and <c>--raw ADDRESS</c> (each repeatable) for an embedded host's links, or <c>--attach
/// [SOCKET]</c> for servald. Usage errors are reported through a callback, in the tool's own words.
/// </summary>
/// <param name="Udp">UDP-encapsulation links (a specific address each).</param>
/// <param name="Raw">Raw IP links (a specific address each).</param>
/// <param name="Attach">servald's control socket when attached, else null.</param>
internal sealed record LinkOptions(List<IPEndPoint> Udp, List<IPAddress> Raw, string? Attach)
{
    /// <summary>Reads the options: links or <c>--attach</c>, not both, and at least one of them.</summary>
    public static bool TryParse(ParseResult p, Option<string[]> udp, Option<string[]> raw, Option<string?> attach, Action<string> usage, [NotNullWhen(true)] out LinkOptions? links)
    {
        links = null;
        var attached = p.GetResult(attach) is not null;
        var udpTexts = p.GetValue(udp) ?? [];
        var rawTexts = p.GetValue(raw) ?? [];
        if (attached && (udpTexts.Length > 0 || rawTexts.Length > 0))
        {
            usage("give links (--udp, --raw) for an embedded host or --attach, not both.");
            return false;
        }

        if (attached)
        {
            links = new LinkOptions([], [], p.GetValue(attach) ?? ServalHost.DefaultDaemonSocketPath);
            return true;
        }

        if (udpTexts.Length == 0 && rawTexts.Length == 0)
        {
            usage("give at least one link (--udp ADDRESS[:PORT] or --raw ADDRESS), or --attach.");
            return false;
        }

        var result = new LinkOptions([], [], null);
        foreach (var text in udpTexts)
        {
            if (!TryParseLinkAddress(text, out var address) || address.ToIPAddress() is not { } ip || ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any))
            {
                usage($"--udp '{text}' is not a specific ADDRESS[:PORT].");
                return false;
            }

            result.Udp.Add(new IPEndPoint(ip, address.Port));
        }

        foreach (var text in rawTexts)
        {
            if (!IPAddress.TryParse(text, out var ip) || ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any))
            {
                usage($"--raw '{text}' is not a specific ADDRESS.");
                return false;
            }

            result.Raw.Add(ip);
        }

        links = result;
        return true;
    }

    /// <summary>ADDRESS[:PORT] (IPv6 in brackets when a port is given); the port defaults to 54325.</summary>
    public static bool TryParseLinkAddress(string text, out LinkAddress address)
    {
        address = LinkAddress.None;
        if (IPAddress.TryParse(text.TrimStart('[').TrimEnd(']'), out var ip))
        {
            address = LinkAddress.FromEndPoint(new IPEndPoint(ip, ServalInfo.DefaultUdpPort));
            return true;
        }

        if (IPEndPoint.TryParse(text, out var ep) && ep.Port != 0)
        {
            address = LinkAddress.FromEndPoint(ep);
            return true;
        }

        return false;
    }
}
