using Serval.Wire;

namespace Serval.Tests;

/// <summary>
/// Two hosts of one <see cref="HostMode"/>, a listener on a service on the first, and one connection from the second
/// with its accepted end; disposed in reverse order (disposing a connection twice is harmless).
/// </summary>
internal sealed record ConnectedPair(ServalHost Server, ServalHost Client, ServalListener Listener, ServalConnection Connection, ServalConnection Accepted) : IAsyncDisposable
{
    public static async Task<ConnectedPair> ConnectAsync(HostMode mode, ServiceId service, CancellationToken ct)
    {
        var server = await mode.HostAsync("server");
        var client = await mode.HostAsync("client");
        var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(service) }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = service, AdvisoryAddress = mode.AddressOf(server) }, ct);
        return new ConnectedPair(server, client, listener, connection, await accept);
    }

    public async ValueTask DisposeAsync()
    {
        await Accepted.DisposeAsync();
        await Connection.DisposeAsync();
        await Listener.DisposeAsync();
        await Client.DisposeAsync();
        await Server.DisposeAsync();
    }
}
