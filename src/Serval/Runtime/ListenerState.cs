using Serval.Stack;

namespace Serval.Runtime;

/// <summary>A listening socket and the accepts waiting on it.</summary>
internal sealed class ListenerState(SocketHandle handle, TransportProtocol protocol) : SocketState(handle)
{
    private readonly Queue<TaskCompletionSource<ConnectionState>> _accepts = new();

    public TransportProtocol Protocol { get; } = protocol;

    public bool IsClosed { get; private set; }

    public void BeginAccept(EngineDriver driver, TaskCompletionSource<ConnectionState> accept)
    {
        if (IsClosed)
        {
            accept.TrySetException(new ObjectDisposedException(nameof(ServalListener)));
            return;
        }

        _accepts.Enqueue(accept);
        TryAccept(driver);
    }

    private void TryAccept(EngineDriver driver)
    {
        while (_accepts.TryPeek(out var accept))
        {
            if (accept.Task.IsCompleted)
            {
                _accepts.Dequeue(); // cancelled
                continue;
            }

            if (driver.Engine.Accept(Handle, out var connection) != ServalError.None)
            {
                return;
            }

            _accepts.Dequeue();
            var state = new ConnectionState(connection, Protocol);
            driver.Sockets[connection.Value] = state;
            driver.Metrics.ConnectionOpened(Protocol);
            if (!accept.TrySetResult(state))
            {
                state.Close(driver, abort: true);
            }
        }
    }

    public override void OnEvent(EngineDriver driver, in EngineEvent e)
    {
        if (e.Kind == EngineEventKind.ConnectionPending)
        {
            TryAccept(driver);
        }
    }

    public void Close(EngineDriver driver, Exception reason)
    {
        if (IsClosed)
        {
            return;
        }

        IsClosed = true;
        driver.Sockets.Remove(Handle.Value);
        driver.Engine.Close(Handle, driver.Now);
        while (_accepts.TryDequeue(out var accept))
        {
            accept.TrySetException(reason);
        }
    }

    public override void OnHostStopped(EngineDriver driver, Exception reason) => Close(driver, reason);
}
