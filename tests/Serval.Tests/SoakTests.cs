using Serval.Testing;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// A short soak between real hosts on loopback (<see cref="ServalSoak"/>, also run for 10 minutes by
/// <c>bench/run.sh hostile</c>): a minute of concurrent connect / SHA-256-verified transfer / close cycles, then every
/// flow ends, nothing faulted and nothing failed.
/// </summary>
[Trait("Tier", "slow")]
public sealed class SoakTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.soak");

    [Fact]
    public async Task A_minute_of_concurrent_connect_transfer_close_leaves_no_flow_no_fault_and_no_failure()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("SERVAL_SOAK_SECONDS"), out var s) ? s : 60;
        var ct = TestNet.Timeout(seconds + 120);
        await using var server = await TestNet.UdpHostAsync("soak-server");
        await using var client1 = await TestNet.UdpHostAsync("soak-client-1");
        await using var client2 = await TestNet.UdpHostAsync("soak-client-2");
        await using var listener = await ServalEcho.ListenAsync(server, Echo, ct);
        ServalHost[] hosts = [server, client1, client2];

        var result = await ServalSoak.RunAsync([client1, client2], loopsPerHost: 2, Echo, server.Address(), TimeSpan.FromSeconds(seconds), seed: 42);

        Assert.True(result.Failures == 0, $"{result.Failures} failed cycles of {result.Transfers + result.Failures}: {string.Join("; ", result.Errors)}");
        Assert.True(result.Transfers >= seconds, $"only {result.Transfers} cycles in {seconds} s");
        Assert.True(
            await ServalSoak.WaitAllAsync(hosts, async h => await ServalSoak.LiveFlowsAsync(h) == 0, TimeSpan.FromSeconds(30)),
            "flows still open: " + string.Join(", ", await Task.WhenAll(hosts.Select(async h => $"{h.Name}={await ServalSoak.LiveFlowsAsync(h)}"))));
        Assert.All(hosts, h => Assert.Equal(0, h.Counters.FlowFaults));
    }
}
