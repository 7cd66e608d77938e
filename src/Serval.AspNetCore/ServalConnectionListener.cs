using System.Net;
using Microsoft.AspNetCore.Connections;
using Serval.Stack;

namespace Serval.AspNetCore;

/// <summary>One bound service: accepted Serval connections become Kestrel connections.</summary>
internal sealed class ServalConnectionListener : IConnectionListener
{
    private readonly ServalListener _listener;
    private readonly ServalHostAccessor? _owner;
    private int _unbound;

    public ServalConnectionListener(ServalListener listener, ServalHostAccessor? owner)
    {
        _listener = listener;
        _owner = owner;
        _owner?.Add(this);
    }

    public EndPoint EndPoint => _listener.LocalEndPoint;

    /// <summary>The service or prefix bound.</summary>
    public ServiceEndPoint ServiceEndPoint => _listener.LocalEndPoint;

    /// <summary>Why accepting stopped while the listener was still bound (the host stopped under it), or null.</summary>
    public Exception? Failure { get; private set; }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            try
            {
                var connection = await _listener.AcceptConnectionAsync(cancellationToken).ConfigureAwait(false);
                var flow = await FlowInfoOrNullAsync(connection).ConfigureAwait(false);
                return new ServalConnectionContext(connection, _listener.LocalEndPoint, flow);
            }
            catch (ObjectDisposedException e)
            {
                if (Volatile.Read(ref _unbound) == 0)
                {
                    Failure = e; // the host stopped while Kestrel still served the service
                }

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

    /// <summary>The flow's snapshot for the connection feature, or null when it cannot be read (the flow is already gone).</summary>
    private static async ValueTask<FlowInfo?> FlowInfoOrNullAsync(ServalConnection connection)
    {
        try
        {
            return await connection.GetFlowInfoAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ServalException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            return null;
        }
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _unbound, 1) == 0)
        {
            _owner?.Remove(this);
        }

        await _listener.DisposeAsync().ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => UnbindAsync();
}
