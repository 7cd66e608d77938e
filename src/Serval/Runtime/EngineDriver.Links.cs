using Serval.Stack;
using Serval.Wire;

namespace Serval.Runtime;

/// <summary>Link state and host-level migration (docs/runtime.md, "Link state and migration").</summary>
internal sealed partial class EngineDriver
{
    private InterfaceMonitor? _monitor;

    /// <summary>The interface monitor, when one runs (see <see cref="ServalHostOptions.MonitorInterfaces"/>).</summary>
    internal InterfaceMonitor? Monitor => _monitor;

    private void CreateMonitor(ServalHostOptions options)
    {
        if (!options.MonitorInterfaces || !OperatingSystem.IsLinux() || IntPtr.Size != 8)
        {
            return;
        }

        var watched = new List<(int, System.Net.IPAddress)>();
        for (var i = 0; i < _links.Length; i++)
        {
            if (_links[i].OsAddress is { } ip)
            {
                watched.Add((i, ip));
            }
        }

        if (watched.Count > 0)
        {
            _monitor = new InterfaceMonitor(this, watched, options.InterfaceMonitorInterval);
        }
    }

    /// <summary>Starts the monitor thread (caller's network namespace) and connects the links' send-error signal to it.</summary>
    private void StartMonitor()
    {
        if (_monitor is not { } monitor)
        {
            return;
        }

        foreach (var link in _links)
        {
            link.AttachNetworkErrorHandler(monitor.RequestScan);
        }

        monitor.Start();
    }

    /// <summary>The monitor saw link <paramref name="link"/>'s interface or address change state (engine thread).</summary>
    public bool ApplyObservedLinkState(int link, bool up)
    {
        MigrationLog.LinkObserved(Logger, Name, link, _links[link], up);
        Engine.SetInterfaceUp(link + 1, up, Now);
        return true;
    }

    /// <summary>Sets link <paramref name="link"/>'s interface up or down in the engine (engine thread).</summary>
    public bool SetLinkUp(int link, bool up)
    {
        CheckLink(link, nameof(link));
        MigrationLog.LinkSet(Logger, Name, link, _links[link], up);
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
        return n;
    }

    /// <summary>Moves every flow of a service in <paramref name="prefix"/> to link <paramref name="to"/> (engine thread).</summary>
    public int MigrateService(ServicePrefix prefix, int to)
    {
        CheckTarget(to);
        var n = 0;
        foreach (var f in Engine.GetFlows())
        {
            if (prefix.Contains(f.Service) && f.Interface != to + 1 && f.PeerAddress.Family == _links[to].LocalAddress.Family
                && Engine.Migrate(f.Socket, to + 1, Now) == ServalError.None)
            {
                n++;
            }
        }

        MigrationLog.MigratedService(Logger, Name, n, prefix, to);
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
            throw new ServalException(ServalError.InvalidArgument, $"Flow {flow} already uses link {to} ({_links[to].Name}).");
        }

        if (info.PeerAddress.Family != _links[to].LocalAddress.Family)
        {
            throw new ServalException(ServalError.InvalidArgument, $"Flow {flow} has an {info.PeerAddress.Family} peer; link {to} ({_links[to].Name}) has another address family.");
        }

        var r = Engine.Migrate(info.Socket, to + 1, Now);
        if (r != ServalError.None)
        {
            throw new ServalException(r, $"Flow {flow} cannot move to link {to}: {r} (state {info.State}).");
        }

        MigrationLog.MigratedFlow(Logger, Name, flow, to);
        return true;
    }

    private void CheckLink(int link, string what)
    {
        if ((uint)link >= (uint)_links.Length)
        {
            throw new ServalException(
                ServalError.InvalidArgument,
                _links.Length == 0
                    ? $"No link {link} ({what}): the host '{Name}' has no links."
                    : $"No link {link} ({what}): the host '{Name}' has {_links.Length} link(s), indices 0 to {_links.Length - 1}.");
        }
    }

    private void CheckTarget(int to)
    {
        CheckLink(to, nameof(to));
        if (!Engine.Interfaces[to + 1].IsUp)
        {
            throw new ServalException(ServalError.NetworkDown, $"Link {to} ({_links[to].Name}) is down: flows cannot move to it.");
        }
    }

    private static partial class MigrationLog
    {
        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 710, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: link {Link} ({LinkName}) observed usable: {Up} (false: its interface is down or its address is gone)")]
        public static partial void LinkObserved(Microsoft.Extensions.Logging.ILogger logger, string host, int link, Links.ServalLink linkName, bool up);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 711, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: link {Link} ({LinkName}) set up: {Up}")]
        public static partial void LinkSet(Microsoft.Extensions.Logging.ILogger logger, string host, int link, Links.ServalLink linkName, bool up);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 712, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: {Count} flow(s) of link {From} moving to link {Link}")]
        public static partial void MigratedLink(Microsoft.Extensions.Logging.ILogger logger, string host, int count, int from, int link);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 713, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: {Count} flow(s) of service {Prefix} moving to link {Link}")]
        public static partial void MigratedService(Microsoft.Extensions.Logging.ILogger logger, string host, int count, ServicePrefix prefix, int link);

        [Microsoft.Extensions.Logging.LoggerMessage(EventId = 714, Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Serval host {Host}: flow {Flow} moving to link {Link}")]
        public static partial void MigratedFlow(Microsoft.Extensions.Logging.ILogger logger, string host, FlowId flow, int link);
    }
}
