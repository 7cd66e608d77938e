using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>Service-table rules and flows as seen from the host.</summary>
public sealed class InspectionTests
{
    [Fact]
    public async Task Rules_are_added_modified_listed_with_counters_and_removed()
    {
        var ct = TestNet.Timeout();
        await using var host = await TestNet.UdpHostAsync("host");
        var prefix = new ServicePrefix(ServiceId.FromName("test.inspect"), 16);
        var target = host.Admin.ForwardTo(LinkAddress.Parse("127.0.0.99:54325"));
        await host.Admin.AddRuleAsync(prefix, target, 5, 3, ct);
        var exists = await Assert.ThrowsAsync<ServalException>(async () => await host.Admin.AddRuleAsync(prefix, target, cancellationToken: ct));
        Assert.Equal(ServalError.AlreadyExists, exists.Error);
        await host.Admin.ModifyRuleAsync(prefix, target, weight: 7, cancellationToken: ct);
        var rule = Assert.Single(host.Admin.GetRules(), r => r.Prefix == prefix);
        Assert.Equal(7u, rule.Weight);
        Assert.Equal(5u, rule.Priority);
        Assert.Contains("FWD 127.0.0.99:54325", rule.ToString(), StringComparison.Ordinal);

        // A datagram resolved by the rule is counted (the address is silent; UDP does not care).
        await using var socket = await ServalDatagramSocket.BindAsync(host, cancellationToken: ct);
        await socket.SendToAsync(prefix.Apply(ServiceId.FromNumber(1)), new byte[] { 1 }, ct);
        Assert.Equal(1, Assert.Single(host.Admin.GetRules(), r => r.Prefix == prefix).PacketsResolved);

        await host.Admin.RemoveRuleAsync(prefix, target, ct);
        var missing = await Assert.ThrowsAsync<ServalException>(async () => await host.Admin.RemoveRuleAsync(prefix, target, ct));
        Assert.Equal(ServalError.NotFound, missing.Error);
        Assert.DoesNotContain(host.Admin.GetRules(), r => r.Prefix == prefix);
    }

    [Fact]
    public async Task Flows_are_listed_with_statistics()
    {
        var ct = TestNet.Timeout();
        var echo = ServiceId.FromName("test.inspect.flows");
        await using var server = await TestNet.UdpHostAsync("server");
        await using var client = await TestNet.UdpHostAsync("client");
        await using var listener = await StreamTests.EchoServerAsync(server, echo, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = echo, AdvisoryAddress = server.Address() }, ct);
        var stream = connection.GetStream();
        await stream.WriteAsync(new byte[50_000], ct);
        await stream.ReadExactlyAsync(new byte[50_000], ct);

        var flow = Assert.Single(await client.GetFlowsAsync(ct));
        Assert.Equal(echo, flow.Service);
        Assert.Equal(SalState.Connected, flow.State);
        Assert.Equal(server.Address(), flow.PeerAddress);
        Assert.True(flow.Stream is { BytesSent: >= 50_000 }, $"BytesSent {flow.Stream?.BytesSent}");
        Assert.True(flow.PacketsReceived > 10, $"PacketsReceived {flow.PacketsReceived}");
        Assert.Equal(flow.LocalFlow, (await connection.GetFlowInfoAsync(ct))?.LocalFlow);
    }
}
