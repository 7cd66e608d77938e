using System.Net;
using Serval.Links;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Demo;

/// <summary>
/// <c>serval-demo router ADDRESS SERVICE NEXTHOP...</c>: a service router on ADDRESS (UDP, port 54325) whose service
/// table forwards SERVICE (a serviceID or name) to each NEXTHOP (<c>address[:port]</c>, equal weights). Prints
/// <c>READY address</c>; on exit (standard input closed) prints how many SYNs it forwarded.
/// </summary>
internal static class RouterCommand
{
    public static async Task<int> RunAsync(string address, string serviceText, IReadOnlyList<string> nextHops)
    {
        if (!IPAddress.TryParse(address, out var ip) || !ServiceEndPoint.TryParse(serviceText, out var endPoint) || nextHops.Count == 0)
        {
            await Console.Error.WriteLineAsync("router: ADDRESS must be an IP address, SERVICE a serviceID or name, NEXTHOP address[:port].").ConfigureAwait(false);
            return 2;
        }

        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "router",
            Links = [new UdpLink(ip)],
            Engine = EngineOptions.Default with { Mode = EngineMode.ServiceRouter },
        }).ConfigureAwait(false);
        var directory = new ReplicaDirectory(router);
        foreach (var hop in nextHops)
        {
            var next = LinkAddress.Parse(hop);
            await directory.AddAsync(endPoint.Service, next.Port == 0 ? next.WithPort(ServalInfo.DefaultUdpPort) : next, 1, CancellationToken.None).ConfigureAwait(false);
        }

        Console.WriteLine($"READY {router.Links[0].LocalAddress}");
        await Console.Out.FlushAsync().ConfigureAwait(false);
        await Console.In.ReadToEndAsync().ConfigureAwait(false);
        Console.WriteLine($"FORWARDED {router.Counters.Forwarded} RECEIVED {router.Counters.PacketsReceived}");
        return 0;
    }
}
