using System.Net;
using Microsoft.AspNetCore.Connections;

namespace Serval.AspNetCore;

/// <summary>One bound service: accepted Serval connections become Kestrel connections.</summary>
internal sealed class ServalConnectionListener(ServalListener listener) : IConnectionListener
{
    private int _unbound;

    public EndPoint EndPoint => listener.LocalEndPoint;

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            try
            {
                var connection = await listener.AcceptConnectionAsync(cancellationToken).ConfigureAwait(false);
                return new ServalConnectionContext(connection, listener.LocalEndPoint);
            }
            catch (ObjectDisposedException)
            {
                return null; // unbound: Kestrel stops accepting
            }
            catch (ServalException) when (Volatile.Read(ref _unbound) == 0)
            {
                // A connection that failed while it was being accepted: wait for the next one.
            }
            catch (ServalException)
            {
                return null;
            }
        }
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Exchange(ref _unbound, 1);
        await listener.DisposeAsync().ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => UnbindAsync();
}
