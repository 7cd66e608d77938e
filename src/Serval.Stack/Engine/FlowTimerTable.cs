namespace Serval.Stack;

/// <summary>
/// The engine's one timer table: every flow's earliest deadline in a min-heap. A flow states its earliest deadline with
/// <see cref="Set"/> (the engine computes it from the flow's control channel, handshake, migration, close and transport
/// timers); a deadline that moves later adds no entry — the queued one fires early and is re-queued at the real
/// deadline — so the heap holds about one entry per flow instead of one per rescheduling. Stale entries (of removed
/// flows, or superseded) are dropped lazily and pruned once they outnumber the flows.
/// </summary>
internal sealed class FlowTimerTable(Dictionary<uint, Flow> flows)
{
    private readonly PriorityQueue<Flow, TimeSpan> _heap = new();

    /// <summary>Entries in the heap, live and stale.</summary>
    public int Count => _heap.Count;

    /// <summary>Sets <paramref name="flow"/>'s earliest deadline (null: none).</summary>
    public void Set(Flow flow, TimeSpan? next)
    {
        if (next == flow.ScheduledAt)
        {
            return;
        }

        flow.ScheduledAt = next;
        if (next is { } at && (flow.QueuedAt is not { } queued || at < queued))
        {
            _heap.Enqueue(flow, at);
            flow.QueuedAt = at;
            Prune();
        }
    }

    /// <summary>Forgets <paramref name="flow"/>'s deadline (it was removed); its entry goes stale.</summary>
    public void Remove(Flow flow)
    {
        flow.ScheduledAt = null;
        Prune();
    }

    /// <summary>The earliest live deadline, or null; stale entries met on the way are dropped or re-queued.</summary>
    public TimeSpan? Earliest()
    {
        while (_heap.TryPeek(out var flow, out var at))
        {
            if (flow.QueuedAt == at && flows.ContainsKey(flow.LocalFlow.Value) && flow.ScheduledAt == at)
            {
                return at;
            }

            // Stale, or a live entry whose deadline moved: dropped or re-queued (never due before its time).
            Pop(flow, at, TimeSpan.MinValue);
        }

        return null;
    }

    /// <summary>
    /// Takes the next flow whose deadline is due at <paramref name="now"/> (its deadline is cleared: the caller runs its
    /// timers and sets the next one); false when none is due.
    /// </summary>
    public bool TryTakeDue(TimeSpan now, out Flow due)
    {
        while (_heap.TryPeek(out var flow, out var at) && at <= now)
        {
            if (Pop(flow, at, now))
            {
                flow.ScheduledAt = null;
                due = flow;
                return true;
            }
        }

        due = null!;
        return false;
    }

    /// <summary>
    /// Takes the top entry off the heap. Returns true when it is the flow's live entry and the flow's deadline is really
    /// due at <paramref name="now"/>; a live entry whose deadline moved later is re-queued at that deadline, stale
    /// entries are dropped.
    /// </summary>
    private bool Pop(Flow flow, TimeSpan at, TimeSpan now)
    {
        _heap.Dequeue();
        if (flow.QueuedAt != at)
        {
            return false; // superseded by an earlier entry of the same flow
        }

        flow.QueuedAt = null;
        if (!flows.ContainsKey(flow.LocalFlow.Value) || flow.ScheduledAt is not { } due)
        {
            return false;
        }

        if (due > now)
        {
            _heap.Enqueue(flow, due);
            flow.QueuedAt = due;
            return false;
        }

        return true;
    }

    /// <summary>
    /// Drops stale entries once they outnumber the flows: until they come to the top each would keep a whole removed
    /// flow reachable — e.g. every flow replaced by a compact TIME-WAIT record, for up to the TIME-WAIT period.
    /// Amortized O(1) per entry: a rebuild leaves at most one entry per live flow.
    /// </summary>
    private void Prune()
    {
        if (_heap.Count <= (2 * flows.Count) + 64)
        {
            return;
        }

        var live = new List<(Flow, TimeSpan)>(flows.Count);
        foreach (var (f, at) in _heap.UnorderedItems)
        {
            if (f.QueuedAt == at && flows.ContainsKey(f.LocalFlow.Value))
            {
                live.Add((f, at));
            }
            else if (f.QueuedAt == at)
            {
                f.QueuedAt = null;
            }
        }

        _heap.Clear();
        _heap.EnqueueRange(live);
    }
}
