using System.Diagnostics;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Runtime;

/// <summary>Link state and host-level migration (docs/runtime.md, "Link state and migration").</summary>
internal sealed partial class EngineDriver
{
    private readonly List<Task> _retiring = [];
    private InterfaceMonitor? _monitor;
    private LinkAddress _defaultRouter;

    /// <summary>The interface monitor, when one runs (see <see cref="ServalHostOptions.MonitorInterfaces"/>).</summary>
    internal InterfaceMonitor? Monitor => _monitor;

    private void CreateMonitor(ServalHostOptions options)
    {
        if (options.LinkPolicies.Count > 0)
        {
            if (!OperatingSystem.IsLinux() || IntPtr.Size != 8)
            {
                throw new PlatformNotSupportedException("Link policies (ServalHostOptions.LinkPolicies) need 64-bit Linux: they follow addresses through rtnetlink.");
            }

            if (options.LinkPolicies.Any(p => p.Kind == LinkKind.RawIp) && !RawIpLink.IsSupported)
            {
                throw new PlatformNotSupportedException("A link policy creates raw IP links, which need CAP_NET_RAW (or root).");
            }
        }
        else if (!options.MonitorInterfaces || !OperatingSystem.IsLinux() || IntPtr.Size != 8)
        {
            return;
        }

        var monitor = new InterfaceMonitor(this, options.Links, options.LinkPolicies, options.InterfaceMonitorInterval);
        if (monitor.HasWork)
        {
            _monitor = monitor;
        }
    }

    /// <summary>Starts the monitor thread (caller's network namespace) and connects the links' send-error signal to it.</summary>
    private void StartMonitor()
    {
        if (_monitor is not { } monitor)
        {
            return;
        }

        foreach (var slot in _slots)
        {
            slot.Link.AttachNetworkErrorHandler(monitor.RequestScan);
        }

        monitor.Start();
    }

    /// <summary>
    /// Adds a link the monitor opened for a new address (engine thread): a new interface (or a retired one's index, once
    /// no flow uses it), started at once; up when its interface is. Flows waiting for an address move to it.
    /// </summary>
    public void AddLink(ServalLink link, bool up)
    {
        if (_closed || _stopRequested)
        {
            link.Dispose();
            return;
        }

        var index = Engine.AddInterface(InterfaceConfigFor(link));
        var slot = new LinkSlot(link, new Port(this, index));
        var slots = _slots;
        if (index - 1 < slots.Length)
        {
            Debug.Assert(slots[index - 1].Retired, "only a retired link's index is reused");
            slots = [.. slots];
            slots[index - 1] = slot;
        }
        else
        {
            Debug.Assert(index - 1 == slots.Length, "new interfaces are numbered in order");
            slots = [.. slots, slot];
        }

        Volatile.Write(ref _slots, slots);
        link.AttachLogger(Logger);
        AttachReceiveThreadNice(link);
        if (_monitor is { } monitor)
        {
            link.AttachNetworkErrorHandler(monitor.RequestScan);
        }

        try
        {
            link.Start(slot.Port);
        }
        catch (Exception e)
        {
            HostLog.LinkReceiveFailed(Logger, e, link.Name);
            RetireSlot(index - 1);
            return;
        }

        HostLog.LinkAttached(Logger, Name, index, link.Name, link.Mtu);
        slot.Up = up;
        if (up)
        {
            // The default router's rule first: flows that waited for an address move to this link as it comes up, and
            // their first RSYN is relayed through that rule when both ends moved (docs/engine.md, "Both ends move").
            EnsureDefaultRouterRule();
            Engine.SetInterfaceUp(index, true, Now);
        }
    }

    /// <summary>
    /// Retires a link whose address went away (engine thread): its interface is removed from the engine (its flows move
    /// to a remaining link of their family, or wait for one), it receives nothing more, and it is disposed off this thread.
    /// </summary>
    /// <param name="link">The link.</param>
    /// <param name="disposed">Completed once the link is disposed (its socket closed), for a new link on its address.</param>
    public void RetireLink(ServalLink link, TaskCompletionSource? disposed = null)
    {
        var slots = _slots;
        for (var i = 0; i < slots.Length; i++)
        {
            if (slots[i].Link == link && !slots[i].Retired)
            {
                MigrationLog.LinkRetired(Logger, Name, i, link);
                RetireSlot(i, disposed);
                return;
            }
        }

        disposed?.TrySetResult();
    }

    private void RetireSlot(int i, TaskCompletionSource? disposed = null)
    {
        var slot = _slots[i];
        slot.Retired = true;
        slot.Up = false;
        slot.Port.Retire();
        Engine.RemoveInterface(i + 1, Now);

        // Disposing waits for the link's receive thread (up to its 100 ms receive time-out): not on the engine thread.
        var link = slot.Link;
        lock (_retiring)
        {
            _retiring.RemoveAll(t => t.IsCompleted);
            _retiring.Add(Task.Run(() =>
            {
                try
                {
                    link.Dispose();
                }
                catch (Exception e)
                {
                    HostLog.LinkReceiveFailed(Logger, e, link.Name);
                }
                finally
                {
                    disposed?.TrySetResult();
                }
            }));
        }
    }

    /// <summary>Waits (bounded) for retired links still being disposed, so the host stops with no socket left open.</summary>
    private void WaitForRetiredLinks()
    {
        Task[] pending;
        lock (_retiring)
        {
            pending = [.. _retiring];
            _retiring.Clear();
        }

        Task.WaitAll(pending, TimeSpan.FromSeconds(5));
    }

    /// <summary>
    /// Keeps <see cref="ServalHostOptions.DefaultRouter"/>'s rule (FORWARD /0) on an up link of the router's family:
    /// the engine removes it with its interface, so after a link goes down or is retired it is put on another, and a
    /// host that had no link of that family gets it with its first one (engine thread, or the constructor).
    /// </summary>
    private void EnsureDefaultRouterRule()
    {
        if (_defaultRouter.IsNone)
        {
            return;
        }

        if (Engine.Services.TryGetExact(ServicePrefix.Default, out var entry)
            && entry.Rules.Any(r => r.Target.Type == Stack.Services.ServiceTargetType.Forward && r.Target.Address == _defaultRouter && IsLinkUp(r.Target.Interface - 1)))
        {
            return;
        }

        var slots = _slots;
        for (var i = 0; i < slots.Length; i++)
        {
            if (slots[i].Up && slots[i].Link.LocalAddress.Family == _defaultRouter.Family)
            {
                Engine.Services.Add(ServicePrefix.Default, ServiceTarget.Forward(_defaultRouter, i + 1), ServiceTable.DefaultRouterPriority, now: Now);
                return;
            }
        }
    }

    /// <summary>
    /// The interface monitor saw a route added (engine thread): every outstanding RSYN is sent again at once. A flow
    /// moving to a new address sends its RSYN the moment the address's link comes up, which can be before the new
    /// default route exists (an address, then its route, as <c>ip</c> and DHCP clients add them): that copy is refused by
    /// the kernel and would otherwise wait for the retransmission timer (at least 200 ms).
    /// </summary>
    public void OnRouteAdded()
    {
        var n = Engine.ResendRsyns(Now);
        if (n > 0)
        {
            MigrationLog.RsynsResent(Logger, Name, n);
        }
    }

    private bool IsLinkUp(int link) => (uint)link < (uint)_slots.Length && _slots[link].Up;

    /// <summary>The monitor saw <paramref name="link"/>'s interface or address change state (engine thread).</summary>
    public bool ApplyObservedLinkState(ServalLink link, bool up)
    {
        var slots = _slots;
        for (var i = 0; i < slots.Length; i++)
        {
            if (slots[i].Link == link && !slots[i].Retired)
            {
                MigrationLog.LinkObserved(Logger, Name, i, link, up);
                slots[i].Up = up;
                Engine.SetInterfaceUp(i + 1, up, Now);
                return true;
            }
        }

        return false;
    }

    /// <summary>Sets link <paramref name="link"/>'s interface up or down in the engine (engine thread).</summary>
    public bool SetLinkUp(int link, bool up)
    {
        CheckLink(link, nameof(link));
        MigrationLog.LinkSet(Logger, Name, link, _slots[link].Link, up);
        _slots[link].Up = up;
        Engine.SetInterfaceUp(link + 1, up, Now);
        return true;
    }

    /// <summary>Moves every flow of link <paramref name="from"/> to link <paramref name="to"/> (engine thread).</summary>
    public int MigrateLink(int from, int to)
    {
        CheckLink(from, nameof(from));
        CheckTarget(to);
        if (from == to)
        {
            throw new ServalException(ServalError.InvalidArgument, $"Cannot move the flows of link {from} to itself: pick another link.");
        }

        var n = Engine.MigrateInterface(from + 1, to + 1, Now);
        MigrationLog.MigratedLink(Logger, Name, n, from, to);
        NoteMigrations();
        return n;
    }

    /// <summary>Moves every flow of a service in <paramref name="prefix"/> to link <paramref name="to"/> (engine thread).</summary>
    public int MigrateService(ServicePrefix prefix, int to)
    {
        CheckTarget(to);
        var n = 0;
        foreach (var f in Engine.GetFlows())
        {
            if (prefix.Contains(f.Service) && f.Interface != to + 1 && f.PeerAddress.Family == _slots[to].Link.LocalAddress.Family
                && Engine.Migrate(f.Socket, to + 1, Now) == ServalError.None)
            {
                n++;
            }
        }

        MigrationLog.MigratedService(Logger, Name, n, prefix, to);
        NoteMigrations();
        return n;
    }

    /// <summary>Moves the flow whose local flowID is <paramref name="flow"/> to link <paramref name="to"/> (engine thread).</summary>
    public bool MigrateFlow(FlowId flow, int to)
    {
        CheckTarget(to);
        var info = Engine.GetFlows().FirstOrDefault(f => f.LocalFlow == flow)
            ?? throw new ServalException(ServalError.BadHandle, $"No flow has the local flowID {flow}.");
        if (info.Interface == to + 1)
        {
            throw new ServalException(ServalError.InvalidArgument, $"Flow {flow} already uses link {to} ({_slots[to].Link.Name}).");
        }

        if (info.PeerAddress.Family != _slots[to].Link.LocalAddress.Family)
        {
            throw new ServalException(ServalError.InvalidArgument, $"Flow {flow} has an {info.PeerAddress.Family} peer; link {to} ({_slots[to].Link.Name}) has another address family.");
        }

        var r = Engine.Migrate(info.Socket, to + 1, Now);
        if (r != ServalError.None)
        {
            throw new ServalException(r, $"Flow {flow} cannot move to link {to}: {r} (state {info.State}).");
        }

        MigrationLog.MigratedFlow(Logger, Name, flow, to);
        NoteMigrations();
        return true;
    }

    private void CheckLink(int link, string what)
    {
        var count = _slots.Length;
        if ((uint)link >= (uint)count)
        {
            throw new ServalException(
                ServalError.InvalidArgument,
                count == 0
                    ? $"No link {link} ({what}): the host '{Name}' has no links."
                    : $"No link {link} ({what}): the host '{Name}' has {count} link(s), indices 0 to {count - 1}.");
        }

        if (_slots[link].Retired)
        {
            throw new ServalException(ServalError.InvalidArgument, $"Link {link} ({what}, {_slots[link].Link.Name}) was retired: its address went away.");
        }
    }

    private void CheckTarget(int to)
    {
        CheckLink(to, nameof(to));
        if (!Engine.Interfaces[to + 1].IsUp)
        {
            throw new ServalException(ServalError.NetworkDown, $"Link {to} ({_slots[to].Link.Name}) is down: flows cannot move to it.");
        }
    }

    private static partial class MigrationLog
    {
        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 710, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: link {Link} ({LinkName}) observed usable: {Up} (false: its interface is down or its address is gone)")]
        public static partial void LinkObserved(Microsoft.Extensions.Logging.ILogger logger, string host, int link, Links.ServalLink linkName, bool up);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 715, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: link {Link} ({LinkName}) retired (its address went away): its flows move to another link or wait for one")]
        public static partial void LinkRetired(Microsoft.Extensions.Logging.ILogger logger, string host, int link, Links.ServalLink linkName);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 711, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: link {Link} ({LinkName}) set up: {Up}")]
        public static partial void LinkSet(Microsoft.Extensions.Logging.ILogger logger, string host, int link, Links.ServalLink linkName, bool up);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 712, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: {Count} flow(s) of link {From} moving to link {Link}")]
        public static partial void MigratedLink(Microsoft.Extensions.Logging.ILogger logger, string host, int count, int from, int link);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 713, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: {Count} flow(s) of service {Prefix} moving to link {Link}")]
        public static partial void MigratedService(Microsoft.Extensions.Logging.ILogger logger, string host, int count, ServicePrefix prefix, int link);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 716, Level = Microsoft.Extensions.Logging.LogLevel.Debug, Message = "Serval host {Host}: a route was added; {Count} outstanding RSYN(s) sent again")]
        public static partial void RsynsResent(Microsoft.Extensions.Logging.ILogger logger, string host, int count);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 714, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: flow {Flow} moving to link {Link}")]
        public static partial void MigratedFlow(Microsoft.Extensions.Logging.ILogger logger, string host, FlowId flow, int link);
    }

    /// <summary>One link of a host at its interface index (interface = position + 1).</summary>
    private sealed class LinkSlot(ServalLink link, Port port)
    {
        private volatile bool _retired;
        private volatile bool _up = true;

        public ServalLink Link { get; } = link;

        public Port Port { get; } = port;

        /// <summary>The link's address went away: the engine removed its interface, the link is disposed (set on the engine thread).</summary>
        public bool Retired
        {
            get => _retired;
            set => _retired = value;
        }

        /// <summary>Whether its interface is up in the engine (set on the engine thread; elsewhere a hint).</summary>
        public bool Up
        {
            get => _up;
            set => _up = value;
        }
    }
}
