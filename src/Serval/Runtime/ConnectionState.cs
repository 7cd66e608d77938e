using Serval.Stack;

namespace Serval.Runtime;

/// <summary>
/// A connection (stream, or connected datagram flow) and what waits on it: the connect, one read, one write, and the
/// read-side and write-side closure. Engine thread only, except the tasks and <see cref="StreamOperation"/>s.
/// </summary>
internal sealed class ConnectionState : SocketState
{
    public ConnectionState(SocketHandle handle, TransportProtocol protocol)
        : base(handle)
    {
        Protocol = protocol;
        ReadOperation = new StreamOperation(this, isRead: true);
        WriteOperation = new StreamOperation(this, isRead: false);
        Observe(ReadsClosed.Task);
        Observe(WritesClosed.Task);
    }

    /// <summary>A failure nobody waits for is not an unobserved task exception.</summary>
    private static void Observe(Task task) =>
        task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    public TransportProtocol Protocol { get; }

    public StreamOperation ReadOperation { get; }

    public StreamOperation WriteOperation { get; }

    /// <summary>Completes when the connection is established (client side).</summary>
    public TaskCompletionSource? Connect { get; set; }

    public TaskCompletionSource ReadsClosed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource WritesClosed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The application released the socket (closed, aborted, or the host stopped).</summary>
    public bool IsReleased { get; private set; }

    /// <summary>What operations after release fail with.</summary>
    private Exception _releaseReason = new ObjectDisposedException(nameof(ServalStream));

    private StreamOperation? _pendingRead;
    private StreamOperation? _pendingWrite;
    private bool _completeWritesAfterWrite;

    public override void OnEvent(EngineDriver driver, in EngineEvent e)
    {
        switch (e.Kind)
        {
            case EngineEventKind.Connected:
                driver.Metrics.ConnectionOpened(Protocol);
                Connect?.TrySetResult();
                break;
            case EngineEventKind.Readable:
                TryRead(driver);
                break;
            case EngineEventKind.Writable:
                TryWrite(driver);
                break;
            case EngineEventKind.Closed:
                OnClosed(driver, e.Error);
                break;
        }
    }

    private void OnClosed(EngineDriver driver, ServalError error)
    {
        if (Connect is { Task.IsCompleted: false } connect)
        {
            driver.Metrics.ConnectionFailed(error);
            connect.TrySetException(new ServalException(error == ServalError.None ? ServalError.ConnectionReset : error));
            Release(driver, abort: true, reason: null);
            return;
        }

        TryRead(driver);
        TryWrite(driver);
        if (error != ServalError.None)
        {
            var ex = new ServalException(error);
            ReadsClosed.TrySetException(ex);
            WritesClosed.TrySetException(ex);
        }
        else
        {
            WritesClosed.TrySetResult();
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Reads

    public void BeginRead(EngineDriver driver, StreamOperation op)
    {
        if (IsReleased)
        {
            op.TrySetException(_releaseReason);
            return;
        }

        _pendingRead = op;
        TryRead(driver);
    }

    private void TryRead(EngineDriver driver)
    {
        if (_pendingRead is not { } op)
        {
            return;
        }

        var buffer = op.Buffer.Span;
        var r = driver.Engine.Read(Handle, buffer, driver.Now, out var n, out var completed);
        if (n > 0)
        {
            _pendingRead = null;
            op.TrySetResult(n);
            return;
        }

        if (completed)
        {
            _pendingRead = null;
            ReadsClosed.TrySetResult();
            op.TrySetResult(0);
            return;
        }

        if (r != ServalError.None)
        {
            _pendingRead = null;
            var ex = new ServalException(r);
            ReadsClosed.TrySetException(ex);
            op.TrySetException(ex);
            return;
        }

        if (buffer.IsEmpty && driver.Engine.Available(Handle) > 0)
        {
            _pendingRead = null;
            op.TrySetResult(0); // a zero-byte read completes once data is available
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Writes

    public void BeginWrite(EngineDriver driver, StreamOperation op)
    {
        if (IsReleased)
        {
            op.TrySetException(_releaseReason);
            return;
        }

        _pendingWrite = op;
        TryWrite(driver);
    }

    private void TryWrite(EngineDriver driver)
    {
        if (_pendingWrite is not { } op)
        {
            return;
        }

        var data = op.Data.Span;
        while (op.Offset < data.Length)
        {
            var r = driver.Engine.Write(Handle, data[op.Offset..], driver.Now, out var n);
            if (r != ServalError.None)
            {
                _pendingWrite = null;
                op.TrySetException(new ServalException(r));
                return;
            }

            if (n == 0)
            {
                return; // the send buffer is full: Writable resumes us
            }

            op.Offset += n;
        }

        _pendingWrite = null;
        op.TrySetResult(op.Offset);
        if (_completeWritesAfterWrite)
        {
            _completeWritesAfterWrite = false;
            CompleteWrites(driver);
        }
    }

    /// <summary>Withdraws a cancelled operation if it is still pending.</summary>
    public void Withdraw(StreamOperation op)
    {
        if (ReferenceEquals(_pendingRead, op))
        {
            _pendingRead = null;
        }
        else if (ReferenceEquals(_pendingWrite, op))
        {
            _pendingWrite = null;
        }

        op.TrySetException(new OperationCanceledException(op.CancellationToken));
    }

    public void CompleteWrites(EngineDriver driver)
    {
        if (IsReleased)
        {
            return;
        }

        if (_pendingWrite is not null)
        {
            _completeWritesAfterWrite = true;
            return;
        }

        if (Protocol == TransportProtocol.Stream)
        {
            driver.Engine.CompleteWrites(Handle, driver.Now);
        }

        WritesClosed.TrySetResult();
    }

    // ------------------------------------------------------------------------------------------------------------
    // Release

    /// <summary>The application is done: close gracefully (or reset with <paramref name="abort"/>) and release the handle.</summary>
    public void Close(EngineDriver driver, bool abort) =>
        Release(driver, abort, abort ? new ServalException(ServalError.Aborted) : new ObjectDisposedException(nameof(ServalStream)));

    private void Release(EngineDriver driver, bool abort, Exception? reason)
    {
        if (IsReleased)
        {
            return;
        }

        IsReleased = true;
        _releaseReason = reason ?? _releaseReason;
        driver.Sockets.Remove(Handle.Value);
        if (abort && driver.Engine.GetState(Handle) != SalState.Closed)
        {
            driver.Engine.Abort(Handle, driver.Now);
        }
        else
        {
            driver.Engine.Close(Handle, driver.Now);
        }

        if (reason is not null)
        {
            Fail(reason);
        }
    }

    private void Fail(Exception reason)
    {
        _pendingRead?.TrySetException(reason);
        _pendingWrite?.TrySetException(reason);
        _pendingRead = null;
        _pendingWrite = null;
        Connect?.TrySetException(reason);
        ReadsClosed.TrySetException(reason);
        WritesClosed.TrySetException(reason);
    }

    public override void OnHostStopped(EngineDriver driver, Exception reason) => Release(driver, abort: true, reason);
}
