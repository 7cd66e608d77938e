namespace Serval.Stack.ControlPlane;

/// <summary>One key of the registry with its value and the revision that last modified it.</summary>
/// <param name="Key">The key, relative to the registry root.</param>
/// <param name="Value">The value.</param>
/// <param name="ModRevision">The registry revision of its last modification.</param>
public readonly record struct RegistryEntry(string Key, string Value, long ModRevision);

/// <summary>One event of a registry watch: a put (with the new value) or a delete, at a revision.</summary>
/// <param name="Key">The key, relative to the registry root.</param>
/// <param name="Value">The new value; null for a delete.</param>
/// <param name="Revision">The revision of the change (events of one transaction share it).</param>
public readonly record struct RegistryWatchEvent(string Key, string? Value, long Revision)
{
    /// <summary>Whether the key was deleted (explicitly or by its lease running out).</summary>
    public bool IsDelete => Value is null;
}

/// <summary>A change of the mirrored state: <see cref="OldValue"/> null means added, <see cref="NewValue"/> null means removed.</summary>
/// <param name="Key">The key.</param>
/// <param name="OldValue">The value before, or null when the key is new.</param>
/// <param name="NewValue">The value after, or null when the key went.</param>
public readonly record struct RegistryChange(string Key, string? OldValue, string? NewValue);

/// <summary>
/// A local copy of the registry's keys kept in step by "a consistent snapshot, then a watch from its revision"
/// (docs/router-fleet.md, "Keeping in step"). Every event is applied at most once: a batch of watch events (all the
/// events of one watch response; etcd never splits a revision across responses) is ignored at or below the revision
/// already applied, so a watch resumed at <see cref="Revision"/> + 1, or one that replays events the snapshot already
/// holds, neither loses nor repeats a change. A new snapshot (after the watch fell behind a compaction, or after the
/// registry was unreachable) replaces the state and reports the difference. Pure; not thread-safe.
/// </summary>
public sealed class RegistryMirror
{
    private readonly Dictionary<string, RegistryEntry> _entries = new(StringComparer.Ordinal);

    /// <summary>The highest revision the state reflects (0 before the first snapshot).</summary>
    public long Revision { get; private set; }

    /// <summary>Whether a snapshot has been applied.</summary>
    public bool HasSnapshot { get; private set; }

    /// <summary>Number of keys.</summary>
    public int Count => _entries.Count;

    /// <summary>The keys and values held.</summary>
    public IEnumerable<RegistryEntry> Entries => _entries.Values;

    /// <summary>The value of <paramref name="key"/>, or null.</summary>
    public string? Get(string key) => _entries.TryGetValue(key, out var e) ? e.Value : null;

    /// <summary>
    /// Replaces the state with a snapshot taken at <paramref name="revision"/>, adding to <paramref name="changes"/>
    /// what differs from the state held (so the consumer sees only real changes, even across a resnapshot).
    /// </summary>
    public void ApplySnapshot(long revision, IEnumerable<RegistryEntry> entries, List<RegistryChange> changes)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(changes);
        var next = new Dictionary<string, RegistryEntry>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            next[e.Key] = e;
        }

        foreach (var (key, old) in _entries)
        {
            if (!next.TryGetValue(key, out var now))
            {
                changes.Add(new RegistryChange(key, old.Value, null));
            }
            else if (!string.Equals(now.Value, old.Value, StringComparison.Ordinal))
            {
                changes.Add(new RegistryChange(key, old.Value, now.Value));
            }
        }

        foreach (var (key, now) in next)
        {
            if (!_entries.ContainsKey(key))
            {
                changes.Add(new RegistryChange(key, null, now.Value));
            }
        }

        _entries.Clear();
        foreach (var (key, e) in next)
        {
            _entries.Add(key, e);
        }

        Revision = revision;
        HasSnapshot = true;
    }

    /// <summary>
    /// Applies one watch response's events (in order). Events at or below <see cref="Revision"/> as it was before the
    /// batch are already reflected and skipped. Returns how many were applied.
    /// </summary>
    public int ApplyEvents(IReadOnlyList<RegistryWatchEvent> events, List<RegistryChange> changes)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(changes);
        var floor = Revision;
        var applied = 0;
        foreach (var e in events)
        {
            if (e.Revision <= floor)
            {
                continue;
            }

            applied++;
            if (e.Revision > Revision)
            {
                Revision = e.Revision;
            }

            if (e.Value is null)
            {
                if (_entries.Remove(e.Key, out var old))
                {
                    changes.Add(new RegistryChange(e.Key, old.Value, null));
                }

                continue;
            }

            _entries.TryGetValue(e.Key, out var previous);
            _entries[e.Key] = new RegistryEntry(e.Key, e.Value, e.Revision);
            if (previous.Key is null)
            {
                changes.Add(new RegistryChange(e.Key, null, e.Value));
            }
            else if (!string.Equals(previous.Value, e.Value, StringComparison.Ordinal))
            {
                changes.Add(new RegistryChange(e.Key, previous.Value, e.Value));
            }
        }

        return applied;
    }

    /// <summary>The registry reported progress: nothing changed up to <paramref name="revision"/>.</summary>
    public void Advance(long revision)
    {
        if (revision > Revision)
        {
            Revision = revision;
        }
    }
}
