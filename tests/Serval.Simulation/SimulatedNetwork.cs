using Serval.Stack;

namespace Serval.Simulation;

/// <summary>
/// A whole simulated network on virtual time: hosts (each one <see cref="Engine"/>), links, and one event queue. Tests
/// of the stream transport without an engine put <see cref="SimPath"/>s on the same queue.
/// Everything random comes from the seed, so a run is identical every time. Runs as fast as the CPU allows.
/// </summary>
public sealed class SimulatedNetwork
{
    private readonly PriorityQueue<Action, (TimeSpan At, long Seq)> _queue = new();
    private readonly List<SimHost> _hosts = [];
    private readonly List<SimLink> _links = [];
    private long _seq;

    /// <summary>Creates a network whose randomness derives from <paramref name="seed"/>.</summary>
    public SimulatedNetwork(ulong seed)
    {
        Seed = seed;
        Random = new SeededRandomSource(seed);
    }

    /// <summary>The seed.</summary>
    public ulong Seed { get; }

    /// <summary>The network's own random source (links and hosts derive theirs from it).</summary>
    public SeededRandomSource Random { get; }

    /// <summary>Virtual time.</summary>
    public TimeSpan Now { get; private set; }

    /// <summary>Every host.</summary>
    public IReadOnlyList<SimHost> Hosts => _hosts;

    /// <summary>Every link, in the order added.</summary>
    public IReadOnlyList<SimLink> Links => _links;

    /// <summary>The time of the next event, or null when none is queued.</summary>
    public TimeSpan? NextEventTime => _queue.TryPeek(out _, out var key) ? key.At : null;

    /// <summary>Events processed so far.</summary>
    public long EventsProcessed { get; private set; }

    /// <summary>Adds a host running an engine with <paramref name="options"/>.</summary>
    public SimHost AddHost(string name, EngineOptions? options = null)
    {
        var host = new SimHost(this, name, new Engine(options ?? EngineOptions.Default, new SeededRandomSource(Random.NextUInt64())));
        _hosts.Add(host);
        return host;
    }

    /// <summary>Adds a link (a shared segment: unicast by address, broadcast to everyone else).</summary>
    public SimLink AddLink(string name, LinkConditions? conditions = null)
    {
        var link = new SimLink(this, name, conditions ?? LinkConditions.Perfect, new SeededRandomSource(Random.NextUInt64()));
        _links.Add(link);
        return link;
    }

    /// <summary>Runs <paramref name="action"/> at virtual time <paramref name="at"/> (not before now).</summary>
    public void Schedule(TimeSpan at, Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        Enqueue(at, action);
    }

    /// <summary>Runs <paramref name="action"/> after <paramref name="delay"/>.</summary>
    public void After(TimeSpan delay, Action action) => Schedule(Now + delay, action);

    /// <summary>Processes events until none is left before <paramref name="until"/>; time ends at <paramref name="until"/>.</summary>
    public void RunUntil(TimeSpan until)
    {
        while (_queue.TryPeek(out _, out var key) && key.At <= until)
        {
            Step();
        }

        if (Now < until)
        {
            Now = until;
        }
    }

    /// <summary>Runs for <paramref name="duration"/> of virtual time.</summary>
    public void RunFor(TimeSpan duration) => RunUntil(Now + duration);

    /// <summary>
    /// Runs until <paramref name="condition"/> holds, checking after every event; false when virtual time reaches
    /// <paramref name="timeout"/> from now or the network goes idle first.
    /// </summary>
    public bool RunUntil(Func<bool> condition, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var end = Now + timeout;
        if (condition())
        {
            return true;
        }

        while (_queue.TryPeek(out _, out var key) && key.At <= end)
        {
            Step();
            if (condition())
            {
                return true;
            }
        }

        if (Now < end && _queue.Count == 0)
        {
            return condition();
        }

        Now = end > Now ? end : Now;
        return condition();
    }

    private void Step()
    {
        var action = _queue.Dequeue();
        EventsProcessed++;
        action();
    }

    internal void Advance(TimeSpan at)
    {
        if (at > Now)
        {
            Now = at;
        }
    }

    internal void Enqueue(TimeSpan at, Action action) => _queue.Enqueue(() =>
    {
        Advance(at);
        action();
    }, (at < Now ? Now : at, _seq++));
}
