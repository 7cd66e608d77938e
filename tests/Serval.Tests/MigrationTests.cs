using System.Security.Cryptography;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>Connection migration over real UDP sockets.</summary>
public sealed class MigrationTests
{
    private static readonly ServiceId Svc = ServiceId.FromName("test.migrate");

    [Fact]
    public async Task A_connection_moves_to_another_link_mid_transfer_and_loses_nothing()
    {
        var ct = TestNet.Timeout(60);
        await using var server = await TestNet.UdpHostAsync("server");
        await using var client = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "client",
            Links = [TestNet.UdpLink(), TestNet.UdpLink()],
            Engine = TestNet.FastEngine,
        }, ct);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Svc, AdvisoryAddress = server.Address() }, ct);
        await using var accepted = await listener.AcceptConnectionAsync(ct);

        var data = new byte[8 * 1024 * 1024];
        new Random(8).NextBytes(data);
        var reader = Task.Run(async () =>
        {
            var ms = new MemoryStream();
            await accepted.GetStream().CopyToAsync(ms, ct);
            return ms.ToArray();
        }, ct);
        var stream = connection.GetStream();
        await stream.WriteAsync(data.AsMemory(0, data.Length / 2), ct);
        await connection.MigrateAsync(1, ct);
        await stream.WriteAsync(data.AsMemory(data.Length / 2), ct);
        stream.CompleteWrites();
        var received = await reader;

        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        var flow = await accepted.GetFlowInfoAsync(ct);
        Assert.Equal(client.Address(1), flow!.PeerAddress);
        await Assert.ThrowsAsync<ServalException>(async () => await connection.MigrateAsync(7, ct));
    }
}
