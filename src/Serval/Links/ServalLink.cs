using Serval.Wire;

namespace Serval.Links;

/// <summary>
/// One link (interface) of a <see cref="ServalHost"/>: the underlay that carries SAL packets — UDP encapsulation,
/// raw IP protocol 144, an in-memory hub, or a decorator around another link. A host owns its links: it starts them
/// when it starts and disposes them when it stops.
/// </summary>
/// <remarks>
/// Threading: <see cref="Start"/>, <see cref="Send"/> and <see cref="Flush"/> are called by the host's engine thread
/// only. A link delivers received packets to the <see cref="ILinkReceiver"/> from any thread (usually its own
/// receive thread). <see cref="Send"/> must not throw for network conditions: a packet that cannot be sent is dropped
/// and counted, as a network would.
/// </remarks>
public abstract class ServalLink : IDisposable
{
    /// <summary>A readable name ("udp 127.0.0.2:54325").</summary>
    public abstract string Name { get; }

    /// <summary>This host's address on the link (with the UDP port on UDP links).</summary>
    public abstract LinkAddress LocalAddress { get; }

    /// <summary>The link's broadcast address, or <see cref="LinkAddress.None"/> (no ad hoc default rule).</summary>
    public virtual LinkAddress BroadcastAddress => LinkAddress.None;

    /// <summary>The largest SAL packet the link carries.</summary>
    public abstract int Mtu { get; }

    /// <summary>
    /// Whether packets sent on this link reach the peer from this link's own address whatever source
    /// <see cref="Send"/> is given (true unless a link says otherwise: UDP encapsulation, where the outer source is
    /// the socket's and NATs rewrite it). False for links that send with the given source (raw IP): their peers verify
    /// every transport checksum strictly against the IP source (docs/engine.md, "checksums").
    /// </summary>
    public virtual bool RewritesSource => true;

    /// <summary>Packets sent, received and dropped by this link.</summary>
    public LinkCounters Counters { get; } = new();

    /// <summary>Starts delivering received packets to <paramref name="receiver"/>. Called once.</summary>
    public abstract void Start(ILinkReceiver receiver);

    /// <summary>
    /// Sends <paramref name="packet"/> (SAL header onward) to <paramref name="destination"/>. <paramref name="source"/>
    /// is the address the engine computed the transport checksum with — the link's own address, or a client's when a
    /// service router forwards its first packet; links that cannot choose their source ignore it (and say so with
    /// <see cref="RewritesSource"/>). <paramref name="hopLimit"/> is the IP TTL / hop limit to send with, or
    /// <see cref="IPHopLimit.Unknown"/> for the link's default; links that cannot set it ignore it. The span is valid
    /// only during the call; a link may queue a copy until <see cref="Flush"/>.
    /// </summary>
    public abstract void Send(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit);

    /// <summary>
    /// A transmit slot: the link's own memory (its send queue) for the next packet of at most
    /// <paramref name="maxLength"/> bytes, which the engine writes in place and hands over with
    /// <see cref="CommitSend"/> — one copy fewer than <see cref="Send"/>. Empty when the link has none (the default,
    /// and decorators): the engine then calls <see cref="Send"/>. Asking again without committing returns the same
    /// memory. Engine thread only (docs/runtime.md, "Links").
    /// </summary>
    internal virtual Span<byte> GetSendSlot(int maxLength) => default;

    /// <summary>Sends the first <paramref name="length"/> bytes of the slot <see cref="GetSendSlot"/> returned, as <see cref="Send"/> would.</summary>
    internal virtual void CommitSend(LinkAddress source, LinkAddress destination, int length, int hopLimit) =>
        throw new NotSupportedException($"The link {Name} has no transmit slots.");

    /// <summary>Transmits whatever <see cref="Send"/> queued (batching links send several packets per system call).</summary>
    public virtual void Flush()
    {
    }

    /// <summary>Gives the link the host's logger (decorators pass it on).</summary>
    internal virtual void AttachLogger(Microsoft.Extensions.Logging.ILogger logger)
    {
    }

    /// <summary>Gives the link an action its receive thread(s) run first, before Start (decorators pass it on).</summary>
    internal virtual void AttachReceiveThreadStart(Action start)
    {
    }

    /// <summary>The operating-system address the link's socket is bound to (UDP, raw IP); null for links the interface monitor cannot watch.</summary>
    internal virtual System.Net.IPAddress? OsAddress => null;

    /// <summary>Gives the link a callback for send errors that mean the network or the address went away (decorators pass it on).</summary>
    internal virtual void AttachNetworkErrorHandler(Action handler)
    {
    }

    /// <summary>Stops receiving and releases the link's resources.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases resources; <paramref name="disposing"/> is false only from a finalizer.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

    /// <inheritdoc/>
    public override string ToString() => Name;
}
