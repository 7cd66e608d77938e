using System.Security.Cryptography;
using System.Text;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>Stream connections between hosts in one process over real UDP sockets on loopback.</summary>
public sealed class StreamTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.echo");

    internal static async Task<ServalListener> EchoServerAsync(ServalHost host, ServiceId service, CancellationToken ct)
    {
        var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(service) }, ct);
        _ = Task.Run(async () =>
        {
            while (true)
            {
                ServalConnection c;
                try
                {
                    c = await listener.AcceptConnectionAsync(ct);
                }
                catch (Exception)
                {
                    return;
                }

                _ = Task.Run(async () =>
                {
                    await using (c)
                    {
                        var s = c.GetStream();
                        var buffer = new byte[65536];
                        try
                        {
                            int n;
                            while ((n = await s.ReadAsync(buffer, ct)) > 0)
                            {
                                await s.WriteAsync(buffer.AsMemory(0, n), ct);
                            }

                            s.CompleteWrites();
                            await s.WritesClosed;
                        }
                        catch (Exception)
                        {
                            // the test decides what matters
                        }
                    }
                }, CancellationToken.None);
            }
        }, CancellationToken.None);
        return listener;
    }

    [Fact]
    public async Task Echo_over_udp_with_an_advisory_address()
    {
        var ct = TestNet.Timeout();
        await using var server = await TestNet.UdpHostAsync("server");
        await using var client = await TestNet.UdpHostAsync("client");
        await using var listener = await EchoServerAsync(server, Echo, ct);

        await using var connection = await ServalConnection.ConnectAsync(
            new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = server.Address() }, ct);
        var stream = connection.GetStream();
        var message = Encoding.UTF8.GetBytes("hello, service");
        await stream.WriteAsync(message, ct);
        stream.CompleteWrites();
        var reply = new MemoryStream();
        await stream.CopyToAsync(reply, ct);
        Assert.Equal(message, reply.ToArray());
        await stream.ReadsClosed;
    }
}
