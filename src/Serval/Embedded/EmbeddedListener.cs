using Serval.Backends;
using Serval.Runtime;
using Serval.Stack;

namespace Serval.Embedded;

/// <summary>A listener socket in this process's engine: accepts are served on the engine thread.</summary>
internal sealed class EmbeddedListener(EngineDriver driver, ListenerState state) : IListenerBackend
{
    public string TelemetryHostName => driver.Name;

    /// <summary>Binds the listener (its DEMUX rule; <see cref="ServalError.AddressInUse"/> when the service is bound).</summary>
    public static async Task<EmbeddedListener> ListenAsync(EngineDriver driver, ServalListenerOptions options)
    {
        var prefix = options.ListenEndPoint.Prefix;
        driver.ServiceLabels.Remember(prefix.Id, options.ListenEndPoint.Name); // bound by name: logs show it
        var state = await driver.InvokeAsync(d =>
        {
            var r = d.Engine.Listen(prefix, options.Protocol, options.ListenBacklog, d.Now, out var handle, options.ServiceKey);
            if (r != ServalError.None)
            {
                throw new ServalException(r, $"Cannot listen on {prefix}: {r}.");
            }

            var s = new ListenerState(handle, options.Protocol);
            d.Sockets[handle.Value] = s;
            return s;
        }).ConfigureAwait(false);
        return new EmbeddedListener(driver, state);
    }

    public async ValueTask<IConnectionBackend> AcceptAsync(CancellationToken cancellationToken)
    {
        var accept = new TaskCompletionSource<ConnectionState>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = cancellationToken.UnsafeRegister(static (s, ct) => ((TaskCompletionSource<ConnectionState>)s!).TrySetCanceled(ct), accept);
        driver.Post(new ActionWorkItem<ConnectionState>(d => state.BeginAccept(d, accept), accept));
        return new EmbeddedConnection(driver, await accept.Task.ConfigureAwait(false));
    }

    public async ValueTask CloseAsync()
    {
        try
        {
            await driver.InvokeAsync(d =>
            {
                state.Close(d, new ObjectDisposedException(nameof(ServalListener)));
                return true;
            }).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The host stopped first and released everything.
        }
    }
}
