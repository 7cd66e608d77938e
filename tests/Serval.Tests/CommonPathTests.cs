// Only the Serval library's own namespaces (and the test framework): this file compiles only while the common path of
// an application (hosts, links, listeners, connections, streams, serviceIDs, prefixes, link addresses, end points,
// errors, options) needs nothing from the Serval.Stack or Serval.Wire namespaces (docs/api.md, "Namespaces").
using Serval;
using Serval.Links;
using Xunit;

namespace CommonPathApplication;

public sealed class CommonPathTests
{
    [Fact]
    public async Task An_application_using_only_the_Serval_namespace_connects_exchanges_and_sees_errors()
    {
        var ct = TestContext.Current.CancellationToken;
        var hub = new InMemoryHub();
        var serverAddress = LinkAddress.Parse("10.9.0.1:54325");
        var clientAddress = LinkAddress.Parse("10.9.0.2:54325");
        await using var server = await ServalHost.StartAsync(new ServalHostOptions { Name = "server", Links = [hub.CreateLink(serverAddress)] }, ct);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "client", Links = [hub.CreateLink(clientAddress)] }, ct);

        ServiceId echo = ServiceId.FromName("common.path.echo");
        ServicePrefix prefix = ServicePrefix.Exact(echo);
        await using var listener = await ServalListener.ListenAsync(
            new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(echo), Protocol = TransportProtocol.Stream }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        await using var connection = await ServalConnection.ConnectAsync(
            new ServalConnectionOptions { Host = client, Service = echo, AdvisoryAddress = serverAddress, ServiceName = "common.path.echo" }, ct);
        await using var accepted = await accept;

        var stream = connection.GetStream();
        await stream.WriteAsync("ping"u8.ToArray(), ct);
        stream.CompleteWrites();
        var received = new byte[4];
        await accepted.GetStream().ReadExactlyAsync(received, ct);
        Assert.True("ping"u8.SequenceEqual(received), $"the server read '{System.Text.Encoding.ASCII.GetString(received)}'");
        Assert.Equal(prefix.Id, listener.LocalEndPoint.Service);

        // No rule and no advisory address: the error is a Serval.ServalError.
        var e = await Assert.ThrowsAsync<ServalException>(async () =>
            await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = ServiceId.FromName("common.path.nowhere") }, ct));
        ServalError error = e.Error;
        Assert.True(error is ServalError.NoRoute or ServalError.ServiceNotFound, $"connecting to an unknown service failed with {error}");
    }
}
