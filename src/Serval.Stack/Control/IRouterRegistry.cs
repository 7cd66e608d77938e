using System.Diagnostics.CodeAnalysis;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// The registration state a fleet of service routers shares (docs/router-fleet.md). A <see cref="RouterController"/>
/// with a registry writes every registration it accepts (after authenticating it) and takes the fleet's state back
/// as snapshots and watch events, installing a FORWARD rule for every registration of the fleet. Without a registry
/// (the default) a router keeps its registrations in its own memory only.
/// </summary>
/// <remarks>
/// The write methods and <see cref="TryTake"/> are called on the engine's thread and must not block: an
/// implementation queues writes and performs them elsewhere. Keys are relative to the registry's root
/// (<see cref="RegistryCodec"/>). A <em>group</em> is one host incarnation at this router (its sender identifier):
/// its entries share one lease of <c>ttl</c>, kept alive by <see cref="KeepAlive"/> while the host refreshes.
/// </remarks>
public interface IRouterRegistry
{
    /// <summary>Called once, before any other call, with an action that makes the engine's thread poll the controller soon (callable from any thread).</summary>
    void Attach(Action wake);

    /// <summary>Writes <paramref name="key"/> = <paramref name="value"/> attached to the lease of <paramref name="group"/> (granted with <paramref name="ttl"/> if it has none).</summary>
    void Put(string key, string value, ulong group, TimeSpan ttl);

    /// <summary>The host of <paramref name="group"/> refreshed: keep its lease alive.</summary>
    void KeepAlive(ulong group);

    /// <summary>Deletes <paramref name="key"/> if it is still attached to the lease of <paramref name="group"/> (another router may have taken it over).</summary>
    void Delete(string key, ulong group);

    /// <summary>The group has no entries left here: its lease may go.</summary>
    void Release(ulong group);

    /// <summary>Writes a key without a lease (drains).</summary>
    void PutPermanent(string key, string value);

    /// <summary>Deletes a key written with <see cref="PutPermanent"/>.</summary>
    void DeletePermanent(string key);

    /// <summary>The next update of the fleet's state for the controller, in order; false when none is pending.</summary>
    bool TryTake([NotNullWhen(true)] out RegistryUpdate? update);

    /// <summary>Health and counters (any thread).</summary>
    RegistryStatus Status { get; }

    /// <summary>The wall-clock time, Unix milliseconds, stamped on the entries written (the engine itself reads no clock).</summary>
    long UnixTimeMilliseconds { get; }
}

/// <summary>
/// An update of the fleet's state: a consistent snapshot (every key at <see cref="Revision"/>, replacing what the
/// controller holds) or the events of one watch response.
/// </summary>
public sealed class RegistryUpdate
{
    /// <summary>The snapshot's revision, or the highest revision of the events (or of a progress notification).</summary>
    public long Revision { get; init; }

    /// <summary>Every key at <see cref="Revision"/> when this is a snapshot; null for watch events.</summary>
    public IReadOnlyList<RegistryEntry>? Snapshot { get; init; }

    /// <summary>The events of one watch response (empty for a snapshot or a progress notification).</summary>
    public IReadOnlyList<RegistryWatchEvent> Events { get; init; } = [];
}

/// <summary>Health of a registry as its router sees it. Read from any thread.</summary>
public sealed class RegistryStatus
{
    private long _errors;
    private long _writes;
    private long _puts;
    private long _eventsReceived;
    private long _snapshots;
    private long _revision;
    private long _watchLagMicroseconds;
    private long _maxWatchLagMicroseconds;
    private int _degraded = 1;
    private string? _lastError;

    /// <summary>True while the registry cannot be reached or the watch is not running: the router forwards from its last table.</summary>
    public bool Degraded => CrossThread.Read(ref _degraded) != 0;

    /// <summary>Failed registry operations (each retried).</summary>
    public long Errors => CrossThread.Read(ref _errors);

    /// <summary>Write requests (transactions) that succeeded.</summary>
    public long Writes => CrossThread.Read(ref _writes);

    /// <summary>Keys written (puts and deletes) by those requests.</summary>
    public long Puts => CrossThread.Read(ref _puts);

    /// <summary>Watch events received.</summary>
    public long EventsReceived => CrossThread.Read(ref _eventsReceived);

    /// <summary>Snapshots taken (the first one, then one after each compaction or outage).</summary>
    public long Snapshots => CrossThread.Read(ref _snapshots);

    /// <summary>The registry revision last received.</summary>
    public long Revision => CrossThread.Read(ref _revision);

    /// <summary>The last watch lag: from the accepting router's write to this router receiving the event.</summary>
    public TimeSpan WatchLag => TimeSpan.FromTicks(CrossThread.Read(ref _watchLagMicroseconds) * 10);

    /// <summary>The largest watch lag seen.</summary>
    public TimeSpan MaxWatchLag => TimeSpan.FromTicks(CrossThread.Read(ref _maxWatchLagMicroseconds) * 10);

    /// <summary>The last error's message, or null.</summary>
    public string? LastError => CrossThread.Read(ref _lastError);

    /// <summary>Sets or clears the degraded state.</summary>
    public void SetDegraded(bool degraded) => CrossThread.Write(ref _degraded, degraded ? 1 : 0);

    /// <summary>Counts a failed operation.</summary>
    public void CountError(string message)
    {
        CrossThread.Increment(ref _errors);
        CrossThread.Write(ref _lastError, message);
    }

    /// <summary>Counts a successful write request of <paramref name="keys"/> keys.</summary>
    public void CountWrite(int keys)
    {
        CrossThread.Increment(ref _writes);
        CrossThread.Add(ref _puts, keys);
    }

    /// <summary>Counts received watch events.</summary>
    public void CountEvents(int n) => CrossThread.Add(ref _eventsReceived, n);

    /// <summary>Counts a snapshot.</summary>
    public void CountSnapshot() => CrossThread.Increment(ref _snapshots);

    /// <summary>Records the revision last received.</summary>
    public void SetRevision(long revision) => CrossThread.Write(ref _revision, revision);

    /// <summary>Records one watch lag.</summary>
    public void RecordWatchLag(TimeSpan lag)
    {
        var us = Math.Max(0, lag.Ticks / 10);
        CrossThread.Write(ref _watchLagMicroseconds, us);
        long max;
        while (us > (max = CrossThread.Read(ref _maxWatchLagMicroseconds)) && CrossThread.CompareExchange(ref _maxWatchLagMicroseconds, us, max) != max)
        {
        }
    }
}
