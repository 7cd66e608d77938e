using Serval.Wire;

namespace Serval.Testing;

/// <summary>The echo service of the integration tests (stream suite, translators).</summary>
internal static class ServalEcho
{
    /// <summary>
    /// Listens on <paramref name="service"/> and echoes every accepted connection until its peer completes writes; a
    /// non-empty <paramref name="greeting"/> is sent first on each connection (e.g. a replica's id).
    /// </summary>
    public static async Task<ServalListener> ListenAsync(ServalHost host, ServiceId service, CancellationToken ct, ReadOnlyMemory<byte> greeting = default)
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
                            if (!greeting.IsEmpty)
                            {
                                await s.WriteAsync(greeting, ct);
                            }

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
}
