using System.Collections.Concurrent;
using Serval.Wire;

namespace Serval.Links;

/// <summary>
/// An in-process network segment: every link created on the hub reaches every other by its address, with no kernel
/// involved (the same bytes a real link carries). Links with port-less addresses behave like raw IP (a packet arrives
/// with the source address and hop limit its sender gave), links with ports like UDP encapsulation (it arrives from the
/// sending link's address, hop limit unknown). Optional seeded impairment applies to every link. Use it to run several
/// <see cref="ServalHost"/>s in one process without sockets.
/// </summary>
public sealed class InMemoryHub
{
    private readonly ConcurrentDictionary<LinkAddress, InMemoryLink> _links = new();
    private readonly FaultInjectionOptions _impairment;
    private int _created;

    /// <summary>Creates a hub; <paramref name="impairment"/> (default none) applies to what each link receives.</summary>
    /// <exception cref="ArgumentException">An impairment option is invalid.</exception>
    public InMemoryHub(FaultInjectionOptions? impairment = null)
    {
        _impairment = impairment ?? FaultInjectionOptions.None;
        _impairment.Validate();
    }

    /// <summary>Packets sent to an address no link on the hub has.</summary>
    public long Undeliverable => Volatile.Read(ref _undeliverable);

    private long _undeliverable;

    /// <summary>Creates a link with <paramref name="address"/> (with a port if the hosts use ports, like UDP).</summary>
    /// <exception cref="ArgumentException">The address is missing or already used on this hub.</exception>
    public ServalLink CreateLink(LinkAddress address, int mtu = 1500)
    {
        if (address.IsNone)
        {
            throw new ArgumentException("A link needs an address.", nameof(address));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(mtu, 256);
        var link = new InMemoryLink(this, address, mtu);
        if (!_links.TryAdd(address, link))
        {
            throw new ArgumentException($"Address {address} is already on this hub.", nameof(address));
        }

        var n = Interlocked.Increment(ref _created);
        return _impairment.IsActive ? new FaultInjectionLink(link, _impairment with { Seed = _impairment.Seed + n }) : link;
    }

    internal void Deliver(LinkAddress destination, LinkAddress source, int hopLimit, ReadOnlySpan<byte> packet)
    {
        if (_links.TryGetValue(destination, out var to) || (destination.Port == 0 && TryFindByAddress(destination, out to)))
        {
            to.Deliver(source, destination, packet, hopLimit);
            return;
        }

        Interlocked.Increment(ref _undeliverable);
    }

    private bool TryFindByAddress(LinkAddress address, out InMemoryLink link)
    {
        foreach (var (key, value) in _links)
        {
            if (key.SameAddress(address))
            {
                link = value;
                return true;
            }
        }

        link = null!;
        return false;
    }

    internal void Remove(InMemoryLink link) => _links.TryRemove(new KeyValuePair<LinkAddress, InMemoryLink>(link.LocalAddress, link));
}
