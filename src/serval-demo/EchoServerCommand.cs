using System.Net;
using Serval.Links;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Demo;

/// <summary>
/// <c>serval-demo echo-server ADDRESS SERVICE</c>: one host on ADDRESS (UDP, port 54325) that echoes streams and
/// datagrams of SERVICE (a serviceID or a name), prints <c>READY address</c>, and runs until its standard input
/// closes. Datagram replies go back to the sender's address (a FORWARD rule for the sender's serviceID is learned).
/// </summary>
internal static class EchoServerCommand
{
    public static async Task<int> RunAsync(string address, string serviceText)
    {
        if (!IPAddress.TryParse(address, out var ip) || !ServiceEndPoint.TryParse(serviceText, out var endPoint))
        {
            await Console.Error.WriteLineAsync("echo-server: ADDRESS must be an IP address and SERVICE a serviceID or name.").ConfigureAwait(false);
            return 2;
        }

        using var stop = new CancellationTokenSource();
        await using var host = await ServalHost.StartAsync(new ServalHostOptions { Name = "echo-server", Links = [new UdpLink(ip)] }, stop.Token).ConfigureAwait(false);
        return await ServeAsync(host, endPoint, $"READY {host.Links[0].LocalAddress}", stop).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>serval-demo echo-attached SOCKET SERVICE</c>: the same echo service in an application attached to the
    /// servald at SOCKET (docs/daemon-mode.md); prints <c>READY pid</c>.
    /// </summary>
    public static async Task<int> RunAttachedAsync(string socketPath, string serviceText)
    {
        if (!ServiceEndPoint.TryParse(serviceText, out var endPoint))
        {
            await Console.Error.WriteLineAsync("echo-attached: SERVICE must be a serviceID or name.").ConfigureAwait(false);
            return 2;
        }

        using var stop = new CancellationTokenSource();
        ServalHost host;
        try
        {
            host = await ServalHost.AttachAsync(socketPath, stop.Token).ConfigureAwait(false);
        }
        catch (ServalException e)
        {
            await Console.Error.WriteLineAsync($"echo-attached: {e.Message}").ConfigureAwait(false);
            return 1;
        }

        await using (host.ConfigureAwait(false))
        {
            return await ServeAsync(host, endPoint, $"READY {Environment.ProcessId}", stop).ConfigureAwait(false);
        }
    }

    private static async Task<int> ServeAsync(ServalHost host, ServiceEndPoint endPoint, string ready, CancellationTokenSource stop)
    {
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = endPoint }, stop.Token).ConfigureAwait(false);
        await using var datagrams = await ServalDatagramSocket.BindAsync(host, endPoint.Prefix, stop.Token).ConfigureAwait(false);
        var streams = Task.Run(() => ServeStreamsAsync(listener, stop.Token), CancellationToken.None);
        var dgrams = Task.Run(() => ServeDatagramsAsync(host, datagrams, stop.Token), CancellationToken.None);
        Console.WriteLine(ready);
        await Console.Out.FlushAsync(stop.Token).ConfigureAwait(false);
        await Console.In.ReadToEndAsync(stop.Token).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(streams, dgrams).ConfigureAwait(false);
        return 0;
    }

    private static async Task ServeStreamsAsync(ServalListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            ServalConnection connection;
            try
            {
                connection = await listener.AcceptConnectionAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(
                async () =>
                {
                    await using (connection.ConfigureAwait(false))
                    {
                        var stream = connection.GetStream();
                        var buffer = new byte[65536];
                        try
                        {
                            int n;
                            while ((n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                            {
                                await stream.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                            }

                            stream.CompleteWrites();
                            await stream.WritesClosed.ConfigureAwait(false);
                        }
                        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
                        {
                        }
                    }
                },
                CancellationToken.None);
        }
    }

    private static async Task ServeDatagramsAsync(ServalHost host, ServalDatagramSocket socket, CancellationToken ct)
    {
        var buffer = new byte[65536];
        var known = new HashSet<ServiceId>();
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var r = await socket.ReceiveFromAsync(buffer, ct).ConfigureAwait(false);
                if (known.Add(r.Source))
                {
                    await host.Admin.AddRuleAsync(ServicePrefix.Exact(r.Source), host.Admin.ForwardTo(r.SourceAddress), cancellationToken: ct).ConfigureAwait(false);
                }

                await socket.SendToAsync(r.Source, buffer.AsMemory(0, r.ReceivedBytes), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (ServalException)
            {
                // A reply without a route: drop it, as a network would.
            }
        }
    }
}
