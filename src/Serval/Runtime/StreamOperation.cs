using System.Threading.Tasks.Sources;

namespace Serval.Runtime;

/// <summary>
/// A reusable read or write of a <see cref="ConnectionState"/> (one of each may be outstanding, as for any
/// <see cref="Stream"/>): started on the caller's thread, carried out on the engine thread, completed there with
/// continuations that run elsewhere. No allocation per operation.
/// </summary>
internal sealed class StreamOperation(ConnectionState owner, bool isRead) : IValueTaskSource<int>, IWorkItem
{
    private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = true };
    private CancellationTokenRegistration _registration;
    private EngineDriver? _driver;
    private int _busy;
    private int _completed;

    public bool IsRead { get; } = isRead;

    /// <summary>Whether an operation is outstanding (started and its result not yet taken).</summary>
    public bool IsBusy => Volatile.Read(ref _busy) != 0;

    public Memory<byte> Buffer { get; private set; }

    public ReadOnlyMemory<byte> Data { get; private set; }

    public int Offset { get; set; }

    public CancellationToken CancellationToken { get; private set; }

    public ValueTask<int> Start(EngineDriver driver, Memory<byte> buffer, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _busy, 1) != 0)
        {
            throw new InvalidOperationException(IsRead ? "A read is already in progress on this stream." : "A write is already in progress on this stream.");
        }

        if (cancellationToken.IsCancellationRequested)
        {
            Volatile.Write(ref _busy, 0);
            return ValueTask.FromCanceled<int>(cancellationToken);
        }

        _core.Reset();
        _completed = 0;
        _driver = driver;
        Buffer = buffer;
        Data = data;
        Offset = 0;
        CancellationToken = cancellationToken;
        var version = _core.Version;
        if (cancellationToken.CanBeCanceled)
        {
            _registration = cancellationToken.UnsafeRegister(static s => ((StreamOperation)s!).OnCancel(), this);
        }

        driver.Post(this);
        return new ValueTask<int>(this, version);
    }

    private void OnCancel()
    {
        var driver = _driver;
        if (driver is null || driver.IsClosed)
        {
            TrySetException(new OperationCanceledException(CancellationToken));
            return;
        }

        driver.Post(new CancelItem(this));
    }

    public void Execute(EngineDriver driver)
    {
        if (CancellationToken.IsCancellationRequested)
        {
            TrySetException(new OperationCanceledException(CancellationToken));
            return;
        }

        if (IsRead)
        {
            owner.BeginRead(driver, this);
        }
        else
        {
            owner.BeginWrite(driver, this);
        }
    }

    public void Abandon(Exception reason) => TrySetException(reason);

    public void TrySetResult(int result)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return;
        }

        _registration.Unregister();
        Buffer = default;
        Data = default;
        _core.SetResult(result);
    }

    public void TrySetException(Exception exception)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return;
        }

        _registration.Unregister();
        Buffer = default;
        Data = default;
        _core.SetException(exception);
    }

    public int GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    /// <summary>Withdraws a pending operation on the engine thread after its token was cancelled.</summary>
    private sealed class CancelItem(StreamOperation operation) : IWorkItem
    {
        public void Execute(EngineDriver driver) => operation.Owner.Withdraw(operation);

        public void Abandon(Exception reason) => operation.TrySetException(new OperationCanceledException(operation.CancellationToken));
    }

    private ConnectionState Owner => owner;
}
