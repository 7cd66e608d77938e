using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Serval.Links;
using Serval.Native;

namespace Serval.Runtime;

/// <summary>
/// Watches the operating-system interfaces that carry a host's UDP and raw IP links (docs/runtime.md, "Interface
/// monitoring"): an rtnetlink socket subscribed to link and address changes wakes a dedicated thread, which dumps the
/// interfaces and their addresses and decides, per link, whether it can still carry packets — its address is present
/// on an interface that is up and running. A change is handed to the engine (<c>SetInterfaceUp</c>), whose automatic
/// migration moves the link's flows to a remaining link. A full rescan also runs every <c>interval</c> and whenever a
/// link reports a send error that means "no such network/address" (<see cref="RequestScan"/>).
/// <para>
/// With link policies (<see cref="ServalHostOptions.LinkPolicies"/>) the monitor also creates a link for every address
/// a policy matches (on this thread, so its socket belongs to the monitored namespace) and hands it to the engine
/// thread, and retires the link when its address goes away (the engine removes its interface; flows move or wait).
/// </para>
/// </summary>
/// <remarks>
/// Netlink sockets see the network namespace of the thread that creates them; the thread is started by
/// <see cref="Start"/>, and inherits the namespace of its caller (the thread that starts the host).
/// </remarks>
internal sealed unsafe partial class InterfaceMonitor : IDisposable
{
    /// <summary>How long an address whose link could not be opened waits before the next attempt.</summary>
    private static readonly TimeSpan RetryOpen = TimeSpan.FromSeconds(1);

    /// <summary>How long a new link waits for a retired link on the same address and port to close its socket.</summary>
    private static readonly TimeSpan AwaitRetired = TimeSpan.FromSeconds(3);

    private readonly EngineDriver _driver;
    private readonly List<Watched> _watched = [];
    private readonly IReadOnlyList<LinkPolicy> _policies;
    private readonly HashSet<(IPAddress Address, int Port)> _explicit = [];
    private readonly Dictionary<(IPAddress Address, int Port), long> _openFailures = [];
    private readonly Dictionary<(IPAddress Address, int Port), Task> _retiring = [];
    private readonly TimeSpan _interval;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _firstScan = new(false);
    private readonly Lock _wakeLock = new();
    private int _wakeFd = -1;
    private volatile bool _stopped;
    private long _scans;

    /// <param name="driver">The host.</param>
    /// <param name="links">The explicit links with an operating-system address (watched for up and down; never retired).</param>
    /// <param name="policies">The link policies (may be empty).</param>
    /// <param name="interval">The rescan interval.</param>
    public InterfaceMonitor(EngineDriver driver, IEnumerable<ServalLink> links, IReadOnlyList<LinkPolicy> policies, TimeSpan interval)
    {
        _driver = driver;
        foreach (var link in links)
        {
            if (link.OsAddress is { } ip)
            {
                _watched.Add(new Watched(link, ip, fromPolicy: false));
                _explicit.Add((Plain(ip), link.LocalAddress.Port));
            }
        }

        _policies = policies;
        _interval = interval;
        _thread = new Thread(Run) { IsBackground = true, Name = $"serval ifmon {driver.Name}" };
    }

    /// <summary>Scans completed (for tests).</summary>
    public long Scans => Volatile.Read(ref _scans);

    /// <summary>Whether there is anything to watch or create.</summary>
    public bool HasWork => _watched.Count > 0 || _policies.Count > 0;

    /// <summary>
    /// Creates the links the policies want for the addresses present now, on the caller's thread (before
    /// <see cref="Start"/>; the host adds them after its explicit links). Empty when netlink is unavailable.
    /// </summary>
    public List<(ServalLink Link, bool Up)> CreateInitialLinks()
    {
        var created = new List<(ServalLink, bool)>();
        if (_policies.Count == 0)
        {
            return created;
        }

        var fd = Netlink.Open(0, out var errno);
        if (fd < 0)
        {
            MonitorLog.Unavailable(_driver.Logger, _driver.Name, errno);
            return created;
        }

        try
        {
            var sequence = 0u;
            if (Netlink.TryDump(fd, ref sequence, out var interfaces, out var addresses))
            {
                ApplyPolicies(interfaces, addresses, (link, up) => created.Add((link, up)), (_, _) => { });
            }
            else
            {
                MonitorLog.DumpFailed(_driver.Logger, _driver.Name, Marshal.GetLastPInvokeError());
            }
        }
        finally
        {
            LinuxSockets.Close(fd);
        }

        return created;
    }

    /// <summary>Starts the monitor thread in the caller's network namespace; returns after the first scan (bounded).</summary>
    public void Start()
    {
        _wakeFd = Netlink.EventFd(0, 0x80000 | 0x800); // EFD_CLOEXEC | EFD_NONBLOCK
        _thread.Start();
        _firstScan.Wait(TimeSpan.FromSeconds(2));
    }

    /// <summary>Asks for a rescan now (a link saw ENETDOWN, ENETUNREACH or EADDRNOTAVAIL).</summary>
    public void RequestScan()
    {
        if (!_stopped)
        {
            Wake();
        }
    }

    public void Dispose()
    {
        _stopped = true;
        Wake();
    }

    /// <summary>Writes to the wake eventfd; under the lock that also guards its closing, so a reused descriptor is never written.</summary>
    private void Wake()
    {
        lock (_wakeLock)
        {
            if (_wakeFd >= 0)
            {
                long one = 1;
                Netlink.Write(_wakeFd, &one, 8);
            }
        }
    }

    private void Run()
    {
        var events = Netlink.Open(Netlink.GroupLink | Netlink.GroupIpv4Address | Netlink.GroupIpv6Address | Netlink.GroupIpv4Route | Netlink.GroupIpv6Route, out var errno);
        var dump = events >= 0 ? Netlink.Open(0, out errno) : -1;
        if (events < 0 || dump < 0)
        {
            MonitorLog.Unavailable(_driver.Logger, _driver.Name, errno);
            if (events >= 0)
            {
                LinuxSockets.Close(events);
            }

            _firstScan.Set();
            CloseWake();
            return;
        }

        try
        {
            var sequence = 0u;
            var first = true;
            var routeAdded = false;
            var buffer = new byte[8192];
            var fds = stackalloc Netlink.PollFd[2];
            while (!_stopped)
            {
                if (Netlink.TryDump(dump, ref sequence, out var interfaces, out var addresses))
                {
                    Interlocked.Increment(ref _scans);
                    if (first)
                    {
                        Classify(addresses);
                        first = false;
                    }

                    Judge(interfaces, addresses);
                    if (_policies.Count > 0 && !_stopped)
                    {
                        ApplyPolicies(
                            interfaces,
                            addresses,
                            (link, up) => _driver.Post(new AddLinkWorkItem(link, up)),
                            (link, up) => _driver.Post(new LinkStateWorkItem(link, up)));
                    }

                    if (routeAdded)
                    {
                        // After any new link: a migration's RSYN that found no route a moment ago leaves again now.
                        routeAdded = false;
                        _driver.Post(new RouteAddedWorkItem());
                    }
                }
                else
                {
                    MonitorLog.DumpFailed(_driver.Logger, _driver.Name, Marshal.GetLastPInvokeError());
                }

                _firstScan.Set();

                // Sleep until a netlink notification, a wake request or the rescan interval.
                fds[0] = new Netlink.PollFd { Fd = events, Events = Netlink.PollIn };
                fds[1] = new Netlink.PollFd { Fd = _wakeFd, Events = Netlink.PollIn };
                Netlink.Poll(fds, _wakeFd >= 0 ? 2u : 1u, (int)Math.Clamp(_interval.TotalMilliseconds, 10, int.MaxValue));
                fixed (byte* b = buffer)
                {
                    // Drain: the next dump reads the state; only whether a route was added matters here.
                    nint n;
                    while ((n = Netlink.Receive(events, b, (nuint)buffer.Length, LinuxSockets.MsgDontWait)) > 0)
                    {
                        routeAdded |= Netlink.HasMessage(b, (int)n, Netlink.NewRoute);
                    }

                    if (_wakeFd >= 0)
                    {
                        Netlink.Read(_wakeFd, b, 8);
                    }
                }
            }
        }
        catch (Exception e)
        {
            MonitorLog.Failed(_driver.Logger, e, _driver.Name);
        }
        finally
        {
            _firstScan.Set();
            LinuxSockets.Close(events);
            LinuxSockets.Close(dump);
            CloseWake();
        }
    }

    /// <summary>Reports every explicit link whose usability changed (policy links are judged in <see cref="ApplyPolicies"/>).</summary>
    private void Judge(Dictionary<int, OsInterface> interfaces, List<OsAddress> addresses)
    {
        foreach (var w in _watched)
        {
            if (w.FromPolicy || w.Mode == LinkMode.Unmonitored)
            {
                continue;
            }

            var up = IsUsable(w.Address, w.Mode, interfaces, addresses);
            if (up != w.Observed)
            {
                w.Observed = up;
                _driver.Post(new LinkStateWorkItem(w.Link, up));
            }
        }
    }

    /// <summary>
    /// The policies against the addresses present: a policy link whose address is gone is retired; one whose interface
    /// changed state is reported (<paramref name="state"/>); an address a policy matches that has no link of that kind
    /// and port gets one (<paramref name="added"/>, with whether its interface is up and running).
    /// </summary>
    private void ApplyPolicies(Dictionary<int, OsInterface> interfaces, List<OsAddress> addresses, Action<ServalLink, bool> added, Action<ServalLink, bool> state)
    {
        for (var i = _watched.Count - 1; i >= 0; i--)
        {
            var w = _watched[i];
            if (!w.FromPolicy)
            {
                continue;
            }

            var present = addresses.FirstOrDefault(a => a.IsUsable && Plain(a.Address).Equals(w.Address));
            if (present.Address is null)
            {
                _watched.RemoveAt(i);
                MonitorLog.Retiring(_driver.Logger, _driver.Name, w.Link.Name);
                var retire = new RetireLinkWorkItem(w.Link);
                _retiring[(w.Address, w.Port)] = retire.Disposed;
                _driver.Post(retire);
                continue;
            }

            var up = interfaces.TryGetValue(present.Interface, out var os) && os.IsUsable;
            if (up != w.Observed)
            {
                w.Observed = up;
                state(w.Link, up);
            }
        }

        var now = Environment.TickCount64;
        foreach (var a in addresses)
        {
            if (!a.IsUsable || !interfaces.TryGetValue(a.Interface, out var os))
            {
                continue;
            }

            var ip = Plain(a.Address);
            foreach (var policy in _policies)
            {
                var key = (ip, policy.LinkPort);
                if (!policy.Matches(os.Name, ip, os.IsLoopback) || _explicit.Contains(key)
                    || _watched.Any(w => w.FromPolicy && w.Address.Equals(ip) && w.Port == policy.LinkPort)
                    || (_openFailures.TryGetValue(key, out var retryAt) && now < retryAt))
                {
                    continue;
                }

                // The address came back while the link that had it is still being retired: its socket holds the port
                // until it is disposed (the engine thread lets go of it first; then the receive thread stops).
                if (_retiring.Remove(key, out var retired) && !retired.Wait(AwaitRetired))
                {
                    MonitorLog.RetiredSlow(_driver.Logger, _driver.Name, ip);
                }

                ServalLink link;
                try
                {
                    link = policy.CreateLink(ip, a.Interface);
                }
                catch (Exception e) when (e is SocketException or PlatformNotSupportedException or ArgumentException)
                {
                    if (_openFailures.TryAdd(key, now + (long)RetryOpen.TotalMilliseconds))
                    {
                        MonitorLog.OpenFailed(_driver.Logger, _driver.Name, ip, os.Name, policy, e.Message);
                    }
                    else
                    {
                        _openFailures[key] = now + (long)RetryOpen.TotalMilliseconds;
                    }

                    continue;
                }

                _openFailures.Remove(key);
                var w = new Watched(link, ip, fromPolicy: true) { Mode = LinkMode.Exact, Observed = os.IsUsable, Port = policy.LinkPort };
                _watched.Add(w);
                MonitorLog.Creating(_driver.Logger, _driver.Name, link.Name, os.Name, policy);
                added(link, w.Observed);
            }
        }

        // Forget failures of addresses that went away, and retirements that are over (both bounded by the addresses).
        foreach (var key in _openFailures.Keys.ToList())
        {
            if (!addresses.Any(a => Plain(a.Address).Equals(key.Address)))
            {
                _openFailures.Remove(key);
            }
        }

        foreach (var (key, task) in _retiring.ToList())
        {
            if (task.IsCompleted)
            {
                _retiring.Remove(key);
            }
        }
    }

    /// <summary>An address without an IPv6 scope (what interfaces report and links are compared by).</summary>
    private static IPAddress Plain(IPAddress ip) =>
        ip.AddressFamily == AddressFamily.InterNetworkV6 && ip.ScopeId != 0 ? new IPAddress(ip.GetAddressBytes()) : ip;

    private void CloseWake()
    {
        lock (_wakeLock)
        {
            if (_wakeFd >= 0)
            {
                LinuxSockets.Close(_wakeFd);
                _wakeFd = -1;
            }
        }
    }

    /// <summary>
    /// How each explicit link is judged, from the first scan: by its exact address when an interface carries it, else
    /// by the interface whose prefix covers it (e.g. 127.0.0.5 on lo's 127.0.0.0/8), else not at all (a wildcard
    /// address, or an address no interface knows).
    /// </summary>
    private void Classify(List<OsAddress> addresses)
    {
        foreach (var w in _watched)
        {
            if (w.FromPolicy)
            {
                continue;
            }

            var ip = w.Address;
            w.Mode = ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any) ? LinkMode.Unmonitored
                : addresses.Any(a => a.Address.Equals(ip)) ? LinkMode.Exact
                : addresses.Any(a => a.Covers(ip)) ? LinkMode.Prefix
                : LinkMode.Unmonitored;
            MonitorLog.Watching(_driver.Logger, _driver.Name, w.Link.Name, ip, w.Mode);
        }
    }

    private static bool IsUsable(IPAddress ip, LinkMode mode, Dictionary<int, OsInterface> interfaces, List<OsAddress> addresses)
    {
        foreach (var a in addresses)
        {
            var match = mode == LinkMode.Exact ? a.Address.Equals(ip) : a.Covers(ip);
            if (match && interfaces.TryGetValue(a.Interface, out var i) && i.IsUsable)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Applies an observed link state on the engine thread; nothing waits for it.</summary>
    private sealed class LinkStateWorkItem(ServalLink link, bool up) : IWorkItem
    {
        public void Execute(EngineDriver driver) => driver.ApplyObservedLinkState(link, up);

        public void Abandon(Exception reason)
        {
        }
    }

    /// <summary>A route was added (engine thread): outstanding RSYNs are sent again (<see cref="EngineDriver.OnRouteAdded"/>).</summary>
    private sealed class RouteAddedWorkItem : IWorkItem
    {
        public void Execute(EngineDriver driver) => driver.OnRouteAdded();

        public void Abandon(Exception reason)
        {
        }
    }

    /// <summary>Hands a link the monitor opened to the engine thread; a host that stopped disposes it.</summary>
    private sealed class AddLinkWorkItem(ServalLink link, bool up) : IWorkItem
    {
        public void Execute(EngineDriver driver) => driver.AddLink(link, up);

        public void Abandon(Exception reason) => link.Dispose();
    }

    /// <summary>Retires a policy link whose address went away (engine thread); <see cref="Disposed"/> completes once its socket is closed.</summary>
    private sealed class RetireLinkWorkItem(ServalLink link) : IWorkItem
    {
        private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Disposed => _disposed.Task;

        public void Execute(EngineDriver driver) => driver.RetireLink(link, _disposed);

        public void Abandon(Exception reason) => _disposed.TrySetResult(); // the stopping host disposes every link it holds
    }

    /// <summary>One link the monitor watches (monitor thread only after <see cref="Start"/>).</summary>
    private sealed class Watched(ServalLink link, IPAddress address, bool fromPolicy)
    {
        public ServalLink Link { get; } = link;

        public IPAddress Address { get; } = address;

        /// <summary>Created by a policy (retired when its address goes), rather than listed in the host's options.</summary>
        public bool FromPolicy { get; } = fromPolicy;

        /// <summary>The port the link binds (0 for raw IP links): with the address, what a policy compares.</summary>
        public int Port { get; init; }

        public LinkMode Mode { get; set; }

        /// <summary>The usability last reported to the engine (links start up).</summary>
        public bool Observed { get; set; } = true;
    }

    private enum LinkMode
    {
        Unmonitored,
        Exact,
        Prefix,
    }

    private static partial class MonitorLog
    {
        [LoggerMessage(EventId = 700, Level = LogLevel.Warning, Message = "Serval host {Host}: interface monitoring unavailable (netlink errno {Errno}); links change state only through SetLinkUpAsync")]
        public static partial void Unavailable(ILogger logger, string host, int errno);

        [LoggerMessage(EventId = 701, Level = LogLevel.Warning, Message = "Serval host {Host}: interface dump failed (errno {Errno}); retrying")]
        public static partial void DumpFailed(ILogger logger, string host, int errno);

        [LoggerMessage(EventId = 702, Level = LogLevel.Error, Message = "Serval host {Host}: the interface monitor failed; links change state only through SetLinkUpAsync")]
        public static partial void Failed(ILogger logger, Exception exception, string host);

        [LoggerMessage(EventId = 703, Level = LogLevel.Debug, Message = "Serval host {Host}: link {Link} ({Address}) watched by {Mode}")]
        public static partial void Watching(ILogger logger, string host, string link, IPAddress address, LinkMode mode);

        [LoggerMessage(EventId = 704, Level = LogLevel.Information, Message = "Serval host {Host}: new link {Link} for an address of {Interface} (policy {Policy})")]
        public static partial void Creating(ILogger logger, string host, string link, string @interface, LinkPolicy policy);

        [LoggerMessage(EventId = 705, Level = LogLevel.Information, Message = "Serval host {Host}: the address of link {Link} went away; retiring the link")]
        public static partial void Retiring(ILogger logger, string host, string link);

        [LoggerMessage(EventId = 707, Level = LogLevel.Warning, Message = "Serval host {Host}: the retired link on {Address} is slow to close; opening the new one anyway")]
        public static partial void RetiredSlow(ILogger logger, string host, IPAddress address);

        [LoggerMessage(EventId = 706, Level = LogLevel.Warning, Message = "Serval host {Host}: cannot open a link on {Address} ({Interface}, policy {Policy}): {Reason}; retrying in a few seconds")]
        public static partial void OpenFailed(ILogger logger, string host, IPAddress address, string @interface, LinkPolicy policy, string reason);
    }
}
