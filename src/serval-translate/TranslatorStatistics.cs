namespace Serval.Translate;

/// <summary>Counters of a translator, safe to read from any thread.</summary>
internal sealed class TranslatorStatistics
{
    private long _accepted;
    private long _completed;
    private long _failed;
    private long _refused;
    private long _active;
    private long _bytesToServal;
    private long _bytesFromServal;

    /// <summary>Connections accepted on the listening side.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Relays that ended with both directions closed cleanly.</summary>
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Relays that failed after the other side was reached (both ends reset).</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Connections whose other side could not be reached (the accepted end was reset).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Relays running now.</summary>
    public long Active => Interlocked.Read(ref _active);

    /// <summary>Bytes relayed from the TCP side to the Serval side.</summary>
    public long BytesToServal => Interlocked.Read(ref _bytesToServal);

    /// <summary>Bytes relayed from the Serval side to the TCP side.</summary>
    public long BytesFromServal => Interlocked.Read(ref _bytesFromServal);

    internal void OnAccepted() => Interlocked.Increment(ref _accepted);

    internal void OnRefused() => Interlocked.Increment(ref _refused);

    internal void OnStarted() => Interlocked.Increment(ref _active);

    internal void OnEnded(bool ok, long toServal, long fromServal)
    {
        Interlocked.Decrement(ref _active);
        Interlocked.Increment(ref ok ? ref _completed : ref _failed);
        Interlocked.Add(ref _bytesToServal, toServal);
        Interlocked.Add(ref _bytesFromServal, fromServal);
    }

    public override string ToString() =>
        $"accepted {Accepted}, completed {Completed}, failed {Failed}, refused {Refused}, active {Active}, bytes to Serval {BytesToServal}, from Serval {BytesFromServal}";
}
