using Serval.Stack;

namespace Serval.Runtime;

/// <summary>
/// A connection (stream, or connected datagram flow) and what waits on it: the connect, one read, one write, and the
/// read-side and write-side closure. Engine thread only, except the tasks, the <see cref="StreamOperation"/>s and the
/// write stage.
/// </summary>
/// <remarks>
/// The write stage (streams only): a write that fits is copied on the application's thread into a bounded buffer
/// (<see cref="StageLimit"/>, grown on demand) and completes at once, as a kernel socket's write completes once the
/// data is in the socket buffer; the engine thread moves staged bytes into the flow's send buffer as it frees up. So
/// a writer needs one wake-up per stage's worth of data instead of two thread hops per write, which keeps the flow
/// backlogged when the host is busy and threads wait to be scheduled. Staged bytes go before any later write, the end
/// of writes and a graceful close; a failure of the connection while bytes are staged fails the next write.
/// <para>A connection that fails (the engine's <see cref="EngineEventKind.Closed"/> with an error: the peer's reset, a
/// time-out, a lost interface) stays failed: the pending read and write, and every later read and write, fail with
/// <see cref="ServalException"/> and that error — a read never reports end of stream after a reset, even when the
/// peer's end of stream had arrived before it. Unread bytes are discarded with the flow's buffers, as Linux does
/// with <c>ECONNRESET</c>. Only the peer's graceful end of stream is a 0-byte read.</para>
/// </remarks>
internal sealed class ConnectionState : SocketState
{
    /// <summary>Most bytes a stream's write stage holds.</summary>
    public const int StageLimit = 1024 * 1024;

    private const int StageInitial = 64 * 1024;
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
    // Created when first needed (most connections are never used after release): not an exception object per connection.
    private Exception? _releaseReasonOrNull;

    private Exception ReleaseReasonException => _releaseReasonOrNull ??= new ObjectDisposedException(nameof(ServalStream));

    /// <summary>The error the connection failed with (None while it has not): reads and writes fail with it from then on.</summary>
    private ServalError _failure;

    private StreamOperation? _pendingRead;
    private StreamOperation? _pendingWrite;
    private bool _completeWritesAfterWrite;

    // The write stage: a ring guarded by _stageLock (application thread adds, engine thread removes).
    private readonly Lock _stageLock = new();
    private byte[] _stage = [];
    private int _stageHead;
    private int _stageCount;
    private bool _drainPosted;
    private bool _stageClosed;
    private bool _writesCompletedByApplication;
    private Exception? _stageFailure;
    private DrainItem? _drainItem;

    // A graceful close waiting for the stage to drain into the flow.
    private bool _closeAfterDrain;

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
        if (_closeAfterDrain)
        {
            // The flow ended while a graceful close waited for staged bytes: they cannot be sent any more.
            DiscardStage(new ServalException(error == ServalError.None ? ServalError.ConnectionReset : error));
            FinishRelease(driver, abort: false);
            return;
        }

        if (Connect is { Task.IsCompleted: false } connect)
        {
            driver.Metrics.ConnectionFailed(error);
            connect.TrySetException(new ServalException(error == ServalError.None ? ServalError.ConnectionReset : error));
            Release(driver, abort: true, reason: null);
            return;
        }

        if (error != ServalError.None)
        {
            // A reset, time-out or lost interface: whatever waits, and whatever comes later, fails with it.
            lock (_stageLock)
            {
                _failure = error;
                _stageClosed = true;
            }

            var ex = new ServalException(error);
            ReadsClosed.TrySetException(ex);
            WritesClosed.TrySetException(ex);
            TryRead(driver);
            TryWrite(driver);
        }
        else
        {
            TryRead(driver);
            TryWrite(driver);
            WritesClosed.TrySetResult();
        }
    }

    /// <summary>The connection's failure as a new exception (each throw its own stack trace).</summary>
    private ServalException FailureException() => new(_failure);

    // ------------------------------------------------------------------------------------------------------------
    // Reads

    public void BeginRead(EngineDriver driver, StreamOperation op)
    {
        if (IsReleased)
        {
            op.TrySetException(ReleaseReasonException);
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

        if (_failure != ServalError.None)
        {
            // Never end of stream after a reset: the engine discarded what was unread, and a read that saw its
            // end-of-stream flag now would tell the application its data was complete.
            _pendingRead = null;
            op.TrySetException(FailureException());
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
            op.TrySetException(ReleaseReasonException);
            return;
        }

        _pendingWrite = op;
        TryWrite(driver);
    }

    private void TryWrite(EngineDriver driver)
    {
        if (_failure != ServalError.None)
        {
            DiscardStage(FailureException());
            if (_pendingWrite is { } failed)
            {
                _pendingWrite = null;
                failed.TrySetException(FailureException());
            }

            _completeWritesAfterWrite = false;
            return;
        }

        if (!DrainStage(driver))
        {
            return; // staged bytes go first; Writable resumes us
        }

        if (_pendingWrite is { } op && !TryFinishWrite(driver, op))
        {
            return;
        }

        // Nothing staged or pending any more: what waited for the writes before it.
        if (_completeWritesAfterWrite)
        {
            _completeWritesAfterWrite = false;
            CompleteWrites(driver);
        }

        if (_closeAfterDrain)
        {
            FinishRelease(driver, abort: false);
        }
    }

    /// <summary>Moves the pending write's bytes into the flow; true when all are in (the write completed).</summary>
    private bool TryFinishWrite(EngineDriver driver, StreamOperation op)
    {
        var data = op.Data.Span;
        while (op.Offset < data.Length)
        {
            var r = driver.Engine.Write(Handle, data[op.Offset..], driver.Now, out var n);
            if (r != ServalError.None)
            {
                _pendingWrite = null;
                op.TrySetException(new ServalException(r));
                return false;
            }

            if (n == 0)
            {
                return false; // the send buffer is full: Writable resumes us
            }

            op.Offset += n;
        }

        _pendingWrite = null;
        op.TrySetResult(op.Offset);
        return true;
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

        if (_pendingWrite is not null || StagedBytes > 0)
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
            if (abort && _closeAfterDrain)
            {
                // A reset (or the host stopping) overtakes a graceful close still draining its stage.
                DiscardStage(reason ?? new ServalException(ServalError.Aborted));
                FinishRelease(driver, abort: true);
            }

            return;
        }

        IsReleased = true;
        _releaseReasonOrNull = reason ?? _releaseReasonOrNull;
        CloseStage();
        if (!abort && !DrainStage(driver))
        {
            // Graceful close with bytes still staged: keep the socket until they are in the flow, then close.
            // Operations still pending fail as on any close (the application is closing while it reads or writes).
            _closeAfterDrain = true;
            _pendingRead?.TrySetException(ReleaseReasonException);
            _pendingWrite?.TrySetException(ReleaseReasonException);
            _pendingRead = null;
            _pendingWrite = null;
            _completeWritesAfterWrite = false;
            return;
        }

        if (abort)
        {
            DiscardStage(ReleaseReasonException);
        }

        FinishReleaseCore(driver, abort, reason);
    }

    private void FinishRelease(EngineDriver driver, bool abort)
    {
        if (!_closeAfterDrain)
        {
            return;
        }

        _closeAfterDrain = false;
        FinishReleaseCore(driver, abort, ReleaseReasonException);
    }

    private void FinishReleaseCore(EngineDriver driver, bool abort, Exception? reason)
    {
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

    // ------------------------------------------------------------------------------------------------------------
    // The write stage

    /// <summary>Bytes staged and not yet in the flow's send buffer.</summary>
    public int StagedBytes
    {
        get
        {
            lock (_stageLock)
            {
                return _stageCount;
            }
        }
    }

    /// <summary>
    /// Application thread: copies <paramref name="data"/> into the stage if it fits whole and the stage is open;
    /// returns false to take the engine path instead (which writes after anything staged). Throws the connection's
    /// failure if it failed while bytes were staged.
    /// </summary>
    public bool TryStage(EngineDriver driver, ReadOnlySpan<byte> data)
    {
        if (Protocol != TransportProtocol.Stream || data.IsEmpty || data.Length > StageLimit)
        {
            return false;
        }

        var post = false;
        lock (_stageLock)
        {
            if (_failure != ServalError.None)
            {
                _stageFailure = null;
                throw FailureException();
            }

            if (_stageFailure is { } failure)
            {
                _stageFailure = null;
                throw failure;
            }

            if (_writesCompletedByApplication)
            {
                throw new ServalException(ServalError.InvalidState);
            }

            if (_stageClosed || WriteOperation.IsBusy || StageLimit - _stageCount < data.Length)
            {
                return false;
            }

            EnsureStageCapacity(_stageCount + data.Length);
            var tail = (_stageHead + _stageCount) & (_stage.Length - 1);
            var first = Math.Min(data.Length, _stage.Length - tail);
            data[..first].CopyTo(_stage.AsSpan(tail));
            data[first..].CopyTo(_stage);
            _stageCount += data.Length;
            if (!_drainPosted)
            {
                _drainPosted = true;
                post = true;
            }
        }

        if (post)
        {
            driver.Post(_drainItem ??= new DrainItem(this));
        }

        return true;
    }

    /// <summary>
    /// Application thread: no more staging — the stream is closing, or (<paramref name="writesCompleted"/>) the
    /// application completed its writes, after which a write fails at once.
    /// </summary>
    public void CloseStage(bool writesCompleted = false)
    {
        lock (_stageLock)
        {
            _stageClosed = true;
            _writesCompletedByApplication |= writesCompleted;
        }
    }

    private void EnsureStageCapacity(int needed)
    {
        if (_stage.Length >= needed)
        {
            return;
        }

        var capacity = Math.Max(StageInitial, _stage.Length);
        while (capacity < needed)
        {
            capacity *= 2;
        }

        var grown = new byte[capacity];
        if (_stageCount > 0)
        {
            var first = Math.Min(_stageCount, _stage.Length - _stageHead);
            _stage.AsSpan(_stageHead, first).CopyTo(grown);
            _stage.AsSpan(0, _stageCount - first).CopyTo(grown.AsSpan(first));
        }

        _stage = grown;
        _stageHead = 0;
    }

    /// <summary>Engine thread: moves staged bytes into the flow; true when the stage is empty.</summary>
    private bool DrainStage(EngineDriver driver)
    {
        lock (_stageLock)
        {
            while (_stageCount > 0)
            {
                var first = Math.Min(_stageCount, _stage.Length - _stageHead);
                var r = driver.Engine.Write(Handle, _stage.AsSpan(_stageHead, first), driver.Now, out var n);
                if (r != ServalError.None)
                {
                    // The staged bytes cannot be sent: the application learns it from its next write.
                    _stageFailure ??= new ServalException(r);
                    _stageCount = 0;
                    _stageHead = 0;
                    break;
                }

                if (n == 0)
                {
                    return false; // the send buffer is full: Writable resumes the drain
                }

                _stageHead = (_stageHead + n) & (_stage.Length - 1);
                _stageCount -= n;
            }

            _stageHead = 0;
            _drainPosted = false;
            return true;
        }
    }

    private void DiscardStage(Exception reason)
    {
        lock (_stageLock)
        {
            if (_stageCount > 0)
            {
                _stageFailure ??= reason;
            }

            _stageCount = 0;
            _stageHead = 0;
            _stageClosed = true;
        }
    }

    /// <summary>Posted when the first bytes are staged: drains them on the engine thread.</summary>
    private sealed class DrainItem(ConnectionState owner) : IWorkItem
    {
        public void Execute(EngineDriver driver)
        {
            if (owner.IsReleased && !owner._closeAfterDrain)
            {
                owner.DiscardStage(owner.ReleaseReasonException);
                return;
            }

            owner.TryWrite(driver);
        }

        public void Abandon(Exception reason) => owner.DiscardStage(reason);
    }
}
