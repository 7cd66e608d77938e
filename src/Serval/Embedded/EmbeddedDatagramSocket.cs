using Serval.Backends;
using Serval.Runtime;
using Serval.Stack;

namespace Serval.Embedded;

/// <summary>An unconnected datagram socket in this process's engine.</summary>
internal sealed class EmbeddedDatagramSocket(EngineDriver driver, DatagramSocketState state) : IDatagramSocketBackend
{
    public SocketHandle? EngineSocket => state.Handle;

    /// <summary>Binds the socket (its DEMUX rule; <see cref="ServalError.AddressInUse"/> when the prefix is bound), or unbound.</summary>
    public static async Task<EmbeddedDatagramSocket> BindAsync(EngineDriver driver, ServicePrefix? localPrefix)
    {
        var state = await driver.InvokeAsync(d =>
        {
            var r = d.Engine.BindDatagram(localPrefix, d.Now, out var handle);
            if (r != ServalError.None)
            {
                throw new ServalException(r, $"Cannot bind datagrams to {localPrefix}: {r}.");
            }

            var s = new DatagramSocketState(handle);
            d.Sockets[handle.Value] = s;
            return s;
        }).ConfigureAwait(false);
        return new EmbeddedDatagramSocket(driver, state);
    }

    public async ValueTask SendToAsync(ServiceId destination, ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken)
    {
        var r = await driver.InvokeAsync(d => state.IsClosed ? ServalError.BadHandle : d.Engine.SendTo(state.Handle, destination, datagram.Span, d.Now)).ConfigureAwait(false);
        if (r != ServalError.None)
        {
            throw new ServalException(r);
        }
    }

    public async ValueTask<ServalReceiveResult> ReceiveFromAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var request = new DatagramSocketState.ReceiveRequest(buffer);
        using var registration = cancellationToken.UnsafeRegister(static (s, ct) => ((TaskCompletionSource<ServalReceiveResult>)s!).TrySetCanceled(ct), request.Completion);
        driver.Post(new ActionWorkItem<ServalReceiveResult>(d => state.BeginReceive(d, request), request.Completion));
        return await request.Completion.Task.ConfigureAwait(false);
    }

    public async ValueTask CloseAsync()
    {
        try
        {
            await driver.InvokeAsync(d =>
            {
                state.Close(d, new ObjectDisposedException(nameof(ServalDatagramSocket)));
                return true;
            }).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The host stopped first and released everything.
        }
    }
}
