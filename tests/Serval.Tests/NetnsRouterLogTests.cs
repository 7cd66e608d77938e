using System.Net;
using Microsoft.Extensions.Logging;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// The host's router lifecycle log lines (docs/observability.md, events 510 and 511): a host with no router configured
/// logs the router it discovers on its link and, once the router stops advertising, that it lost it. Discovery needs
/// a broadcast link, which loopback is not: two namespaces on a bridge. Needs root; skipped otherwise.
/// </summary>
[Trait("Tier", "netns")]
public sealed class NetnsRouterLogTests
{
    [Fact]
    public async Task A_host_logs_the_router_it_discovers_and_the_router_it_loses()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var ct = TestNet.Timeout(60);
        using var logs = new CapturingLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Information));
        await using var lan = BridgeLan.Create("rlog", 96, 2);
        await using var host = Start(lan.Hosts[0], "rlog-host", lan.Address(0), router: false, loggers);
        var routerAddress = LinkAddress.FromIPAddress(lan.Address(1)).WithPort(ServalInfo.DefaultUdpPort);
        var discovered = $"Serval host rlog-host: discovered service router {routerAddress}";
        var lost = $"Serval host rlog-host: lost service router {routerAddress}";
        Assert.False(logs.Has(LogLevel.Information, "discovered service router"), logs.Dump());

        var router = Start(lan.Hosts[1], "rlog-router", lan.Address(1), router: true, loggers);
        try
        {
            await Eventually.UntilAsync(
                () => ValueTask.FromResult(logs.Has(LogLevel.Information, discovered)),
                seen => seen,
                $"'{discovered}' (Information); lines:\n{logs.Dump()}",
                cancellationToken: ct);
            Assert.False(logs.Has(LogLevel.Warning, lost), logs.Dump());
        }
        finally
        {
            await router.DisposeAsync();
        }

        // The router is gone: no more advertisements; the host forgets it when the advertised lifetime (3 s) lapses.
        await Eventually.UntilAsync(
            () => ValueTask.FromResult(logs.Has(LogLevel.Warning, lost)),
            seen => seen,
            $"'{lost}' (Warning); lines:\n{logs.Dump()}",
            timeout: TimeSpan.FromSeconds(30),
            cancellationToken: ct);
        var discoveredEvent = Assert.Single(logs.Lines, l => l.Message.StartsWith(discovered, StringComparison.Ordinal));
        Assert.Equal(510, discoveredEvent.EventId);
        Assert.Equal(511, Assert.Single(logs.Lines, l => l.Message.StartsWith(lost, StringComparison.Ordinal)).EventId);
    }

    private static ServalHost Start(NetNamespace ns, string name, IPAddress address, bool router, ILoggerFactory loggers) =>
        ns.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = name,
            Links = [new UdpLink(address)],
            Engine = TestNet.FastEngine with { Mode = router ? EngineMode.ServiceRouter : EngineMode.Host },
            RouterControl = router ? new RouterControllerOptions() : null,
            LoggerFactory = loggers,
        }).AsTask().GetAwaiter().GetResult());
}
