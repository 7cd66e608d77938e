using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Serval.Native;

namespace Serval.Runtime;

/// <summary>
/// Watches the operating-system interfaces that carry a host's UDP and raw IP links (docs/runtime.md, "Interface
/// monitoring"): an rtnetlink socket subscribed to link and address changes wakes a dedicated thread, which dumps the
/// interfaces and their addresses and decides, per link, whether it can still carry packets — its address is present
/// on an interface that is up and running. A change is handed to the engine (<c>SetInterfaceUp</c>), whose automatic
/// migration moves the link's flows to a remaining link. A full rescan also runs every <c>interval</c> and whenever a
/// link reports a send error that means "no such network/address" (<see cref="RequestScan"/>).
/// </summary>
/// <remarks>
/// Netlink sockets see the network namespace of the thread that creates them; the thread is started by
/// <see cref="Start"/>, and inherits the namespace of its caller (the thread that starts the host).
/// </remarks>
internal sealed unsafe partial class InterfaceMonitor : IDisposable
{
    private readonly EngineDriver _driver;
    private readonly (int Link, IPAddress Address)[] _links;
    private readonly TimeSpan _interval;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _firstScan = new(false);
    private readonly Lock _wakeLock = new();
    private int _wakeFd = -1;
    private volatile bool _stopped;
    private long _scans;

    public InterfaceMonitor(EngineDriver driver, IEnumerable<(int Link, IPAddress Address)> links, TimeSpan interval)
    {
        _driver = driver;
        _links = [.. links];
        _interval = interval;
        _thread = new Thread(Run) { IsBackground = true, Name = $"serval ifmon {driver.Name}" };
    }

    /// <summary>Scans completed (for tests).</summary>
    public long Scans => Volatile.Read(ref _scans);

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
        var events = Netlink.Open(Netlink.GroupLink | Netlink.GroupIpv4Address | Netlink.GroupIpv6Address, out var errno);
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
            var modes = new LinkMode[_links.Length];
            var observed = new bool[_links.Length];
            Array.Fill(observed, true);
            var first = true;
            var buffer = new byte[8192];
            var fds = stackalloc Netlink.PollFd[2];
            while (!_stopped)
            {
                if (Netlink.TryDump(dump, ref sequence, out var flags, out var addresses))
                {
                    Interlocked.Increment(ref _scans);
                    if (first)
                    {
                        Classify(modes, addresses);
                        first = false;
                    }

                    for (var i = 0; i < _links.Length; i++)
                    {
                        if (modes[i] == LinkMode.Unmonitored)
                        {
                            continue;
                        }

                        var up = IsUsable(_links[i].Address, modes[i], flags, addresses);
                        if (up != observed[i])
                        {
                            observed[i] = up;
                            var link = _links[i].Link;
                            _driver.Post(new LinkStateWorkItem(link, up));
                        }
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
                    // Drain: the content does not matter, the next dump reads the state.
                    while (Netlink.Receive(events, b, (nuint)buffer.Length, LinuxSockets.MsgDontWait) > 0)
                    {
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
    /// How each link is judged, from the first scan: by its exact address when an interface carries it, else by the
    /// interface whose prefix covers it (e.g. 127.0.0.5 on lo's 127.0.0.0/8), else not at all (a wildcard address,
    /// or an address no interface knows).
    /// </summary>
    private void Classify(LinkMode[] modes, List<OsAddress> addresses)
    {
        for (var i = 0; i < _links.Length; i++)
        {
            var ip = _links[i].Address;
            modes[i] = ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any) ? LinkMode.Unmonitored
                : addresses.Any(a => a.Address.Equals(ip)) ? LinkMode.Exact
                : addresses.Any(a => a.Covers(ip)) ? LinkMode.Prefix
                : LinkMode.Unmonitored;
            MonitorLog.Watching(_driver.Logger, _driver.Name, _links[i].Link, ip, modes[i]);
        }
    }

    private static bool IsUsable(IPAddress ip, LinkMode mode, Dictionary<int, uint> flags, List<OsAddress> addresses)
    {
        const uint usable = Netlink.InterfaceUp | Netlink.InterfaceRunning;
        foreach (var a in addresses)
        {
            var match = mode == LinkMode.Exact ? a.Address.Equals(ip) : a.Covers(ip);
            if (match && flags.TryGetValue(a.Interface, out var f) && (f & usable) == usable)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Applies an observed link state on the engine thread; nothing waits for it.</summary>
    private sealed class LinkStateWorkItem(int link, bool up) : IWorkItem
    {
        public void Execute(EngineDriver driver) => driver.ApplyObservedLinkState(link, up);

        public void Abandon(Exception reason)
        {
        }
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
        public static partial void Watching(ILogger logger, string host, int link, IPAddress address, LinkMode mode);
    }
}
