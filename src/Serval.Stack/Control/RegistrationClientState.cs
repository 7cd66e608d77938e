using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

// The state RegistrationClient keeps per query, router, prefix and (prefix, router) pair.

/// <summary>A Resolve query of <see cref="RegistrationClient"/> waiting for a router's answer, and who waits for it.</summary>
internal sealed class PendingQuery(ServiceId service)
{
    public ServiceId Service { get; } = service;

    public List<Action<ServiceId, ServiceResolution?, TimeSpan>> Completions { get; } = [];

    /// <summary>Sequence numbers of the Resolve messages sent for it (an answer to any of them counts).</summary>
    public List<uint> Sequences { get; } = [];

    /// <summary>Index of the router being asked.</summary>
    public int Router { get; set; }

    /// <summary>Messages sent to that router.</summary>
    public int Attempts { get; set; }

    public long Generation { get; set; }

    public bool Done { get; private set; }

    public void Finish(ServiceResolution? resolution, TimeSpan now)
    {
        Done = true;
        foreach (var c in Completions)
        {
            c(Service, resolution, now);
        }
    }
}

/// <summary>What <see cref="RegistrationClient"/> knows of one configured router: its epoch, its clock, the interface used.</summary>
internal sealed class RouterLink(RouterEndpoint endpoint, int index)
{
    public RouterEndpoint Endpoint { get; } = endpoint;

    public int Index { get; } = index;

    /// <summary>The interface now used to reach the router (the configured one at first; see <see cref="RegistrationClient.FollowInterfaces"/>).</summary>
    public int Interface { get; set; } = endpoint.Interface;

    public ulong Epoch { get; private set; }

    public long ClockOffset { get; private set; }

    public bool HasClock { get; private set; }

    public TimeSpan? LastAckAt { get; private set; }

    /// <summary>Our estimate of the router clock (ms), 0 before its first answer.</summary>
    public ulong EstimateClock(TimeSpan now) => HasClock ? (ulong)Math.Max(0, Milliseconds(now) + ClockOffset) : 0;

    /// <summary>Takes the epoch and clock of an authentic acknowledgement; true when the epoch changed from a known one (restart).</summary>
    public bool Learn(in ControlMessage ack, TimeSpan now)
    {
        var restarted = Epoch != 0 && ack.Epoch != Epoch;
        Epoch = ack.Epoch;
        ClockOffset = (long)Math.Min(ack.Timestamp, long.MaxValue / 2) - Milliseconds(now);
        HasClock = true;
        LastAckAt = now;
        return restarted;
    }

    private static long Milliseconds(TimeSpan t) => t.Ticks / TimeSpan.TicksPerMillisecond;
}

/// <summary>One prefix <see cref="RegistrationClient"/> keeps registered, with its state per router.</summary>
internal sealed class ClientEntry
{
    public ClientEntry(ServicePrefix prefix, int routers)
    {
        Prefix = prefix;
        Slots = new ClientSlot[routers];
        for (var i = 0; i < routers; i++)
        {
            Slots[i] = new ClientSlot(this, i);
        }
    }

    public ServicePrefix Prefix { get; }

    public ClientSlot[] Slots { get; }

    public uint Weight { get; set; }

    public bool Draining { get; set; }

    public ServiceTransports Transports { get; set; }

    /// <summary>The key of the prefix's self-certifying serviceID, if a listener holds it: Registers and Unregisters are signed with it.</summary>
    public ServiceKey? Signer { get; set; }

    /// <summary>Being unregistered.</summary>
    public bool Withdrawn { get; set; }

    /// <summary>Forgotten (stale timers skip it).</summary>
    public bool Removed { get; set; }
}

/// <summary>One prefix's state with one router.</summary>
internal sealed class ClientSlot(ClientEntry entry, int router)
{
    public ClientEntry Entry { get; } = entry;

    public int Router { get; } = router;

    /// <summary>Invalidates queued timer items when bumped.</summary>
    public long Generation { get; set; }

    /// <summary>Messages sent in the current round (0: the round has not started).</summary>
    public int Attempts { get; set; }

    /// <summary>Sequence number of the round's first message; acks of any message of the round count.</summary>
    public uint RoundStart { get; set; }

    public uint LastSequence { get; set; }

    /// <summary>The router acknowledged the registration and holds it.</summary>
    public bool Acked { get; set; }

    /// <summary>Withdrawn entries: this router is done (acknowledged or given up).</summary>
    public bool Done { get; set; }
}
