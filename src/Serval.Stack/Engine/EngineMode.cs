namespace Serval.Stack;

/// <summary>How an engine resolves packets of connections it does not terminate (docs/protocol.md §7–8).</summary>
public enum EngineMode
{
    /// <summary>End host: incoming SYNs and unconnected datagrams are matched against local DEMUX rules only.</summary>
    Host,

    /// <summary>
    /// Service router: incoming SYNs and unconnected datagrams are resolved against all rules and forwarded with the
    /// SOURCE/SOURCE6 extension; local DEMUX rules still deliver to local sockets.
    /// </summary>
    ServiceRouter,
}
