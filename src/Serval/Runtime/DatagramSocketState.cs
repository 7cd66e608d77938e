using Serval.Stack;

namespace Serval.Runtime;

/// <summary>An unconnected datagram socket and the receives waiting on it.</summary>
internal sealed class DatagramSocketState(SocketHandle handle) : SocketState(handle)
{
    private readonly Queue<ReceiveRequest> _receives = new();

    public bool IsClosed { get; private set; }

    public void BeginReceive(EngineDriver driver, ReceiveRequest request)
    {
        if (IsClosed)
        {
            request.Completion.TrySetException(new ObjectDisposedException(nameof(ServalDatagramSocket)));
            return;
        }

        _receives.Enqueue(request);
        TryReceive(driver);
    }

    private void TryReceive(EngineDriver driver)
    {
        while (_receives.TryPeek(out var request))
        {
            if (request.Completion.Task.IsCompleted)
            {
                _receives.Dequeue();
                continue;
            }

            var r = driver.Engine.ReceiveFrom(Handle, request.Buffer.Span, out var n, out var source, out var address);
            if (r == ServalError.WouldBlock)
            {
                return;
            }

            _receives.Dequeue();
            if (r != ServalError.None)
            {
                request.Completion.TrySetException(new ServalException(r));
                continue;
            }

            request.Completion.TrySetResult(new ServalReceiveResult(n, source, address));
        }
    }

    public override void OnEvent(EngineDriver driver, in EngineEvent e)
    {
        if (e.Kind == EngineEventKind.Readable)
        {
            TryReceive(driver);
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
        while (_receives.TryDequeue(out var request))
        {
            request.Completion.TrySetException(reason);
        }
    }

    public override void OnHostStopped(EngineDriver driver, Exception reason) => Close(driver, reason);

    /// <summary>One pending receive.</summary>
    internal sealed class ReceiveRequest(Memory<byte> buffer)
    {
        public Memory<byte> Buffer { get; } = buffer;

        public TaskCompletionSource<ServalReceiveResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
