using Serval.Backends;
using Serval.Runtime;
using Serval.Stack;

namespace Serval.Embedded;

/// <summary>
/// A flow (stream, or connected datagrams) in this process's engine: every call becomes work on the engine thread
/// (docs/runtime.md); a stream write that fits the write stage completes without crossing to it.
/// </summary>
internal sealed class EmbeddedConnection(EngineDriver driver, ConnectionState state) : IConnectionBackend
{
    public SocketHandle? EngineSocket => state.Handle;

    public string TelemetryHostName => driver.Name;

    public Task ReadsClosed => state.ReadsClosed.Task;

    public Task WritesClosed => state.WritesClosed.Task;

    /// <summary>Opens a flow and waits until it is established; cancelling aborts it.</summary>
    public static async Task<EmbeddedConnection> ConnectAsync(EngineDriver driver, ServalConnectionOptions options, TransportProtocol protocol, System.Diagnostics.Activity? activity, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var context = activity?.Context ?? default;
        var state = await driver.InvokeAsync(d =>
        {
            // An on-demand resolution this SYN starts becomes a child of the connect span.
            d.NoteConnectContext(options.Service, context);
            var r = d.Engine.Connect(options.Service, protocol, d.Now, out var handle, options.AdvisoryAddress, options.Security);
            if (r != ServalError.None)
            {
                throw new ServalException(r);
            }

            var s = new ConnectionState(handle, protocol) { Connect = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
            d.Sockets[handle.Value] = s;
            return s;
        }).ConfigureAwait(false);
        try
        {
            await state.Connect!.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            driver.Post(new FuncWorkItem<bool>(d =>
            {
                state.Close(d, abort: true);
                return true;
            }));
            throw;
        }

        return new EmbeddedConnection(driver, state);
    }

    public ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        state.ReadOperation.Start(driver, buffer, default, cancellationToken);

    public ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        try
        {
            if (state.TryStage(driver, buffer.Span))
            {
                return default;
            }
        }
        catch (ServalException e)
        {
            return ValueTask.FromException(e);
        }

        var pending = state.WriteOperation.Start(driver, default, buffer, cancellationToken);
        if (pending.IsCompletedSuccessfully)
        {
            _ = pending.Result;
            return default;
        }

        return AwaitWrite(pending);
    }

    private static async ValueTask AwaitWrite(ValueTask<int> pending) => await pending.ConfigureAwait(false);

    public async ValueTask SendDatagramAsync(ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken) =>
        await state.WriteOperation.Start(driver, default, datagram, cancellationToken).ConfigureAwait(false);

    public void CompleteWrites()
    {
        state.CloseStage(writesCompleted: true);
        driver.Post(new FuncWorkItem<bool>(d =>
        {
            state.CompleteWrites(d);
            return true;
        }));
    }

    public async ValueTask<FlowInfo?> GetFlowInfoAsync(CancellationToken cancellationToken)
    {
        var handle = state.Handle;
        return await driver.InvokeAsync(d => d.Engine.GetFlow(handle)).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask MigrateAsync(int linkIndex, CancellationToken cancellationToken)
    {
        var handle = state.Handle;
        var r = await driver.InvokeAsync(d =>
        {
            var result = d.Engine.Migrate(handle, linkIndex + 1, d.Now);
            d.NoteMigrations();
            return result;
        }).WaitAsync(cancellationToken).ConfigureAwait(false);
        if (r != ServalError.None)
        {
            throw new ServalException(r, $"Cannot move the connection to link {linkIndex}: {r}.");
        }
    }

    public async ValueTask CloseAsync(bool abort)
    {
        try
        {
            await driver.InvokeAsync(d =>
            {
                state.Close(d, abort);
                return true;
            }).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The host stopped first and released everything.
        }
    }
}
