using Serval.Wire;

namespace Serval.Links;

/// <summary>
/// A link on an <see cref="InMemoryHub"/>. Sending hands the packet straight to the destination link's receiver. With
/// addresses without ports the hub behaves like raw IP: the receiver sees the source and the hop limit the sender gave
/// (64 when it gave none); with ports, like UDP encapsulation: the source is the sending link's address and the hop
/// limit unknown.
/// </summary>
internal sealed class InMemoryLink(InMemoryHub hub, LinkAddress address, int mtu) : ServalLink
{
    private ILinkReceiver? _receiver;
    private volatile bool _disposed;

    public override string Name { get; } = $"mem {address}";

    public override LinkAddress LocalAddress { get; } = address;

    public override int Mtu { get; } = mtu;

    public override bool RewritesSource => LocalAddress.Port != 0;

    public override void Start(ILinkReceiver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        if (Interlocked.CompareExchange(ref _receiver, receiver, null) is not null)
        {
            throw new InvalidOperationException("The link is already started.");
        }
    }

    public override void Send(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        if (_disposed)
        {
            return;
        }

        Counters.Sent(packet.Length);
        if (RewritesSource || source.IsNone || source.Family != LocalAddress.Family)
        {
            source = LocalAddress;
        }

        hub.Deliver(destination, source, RewritesSource ? IPHopLimit.Unknown : IPHopLimit.OrDefault(hopLimit), packet);
    }

    internal void Deliver(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        if (_disposed || _receiver is not { } r)
        {
            Counters.Dropped();
            return;
        }

        Counters.Received(packet.Length);
        r.Receive(source, destination, packet, hopLimit);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            hub.Remove(this);
        }

        base.Dispose(disposing);
    }
}
