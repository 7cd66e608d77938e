using Serval.Stack;
using Serval.Wire;
using Serval.Wire.Pcap;

namespace Serval.Simulation;

/// <summary>
/// A simulated shared link. Hosts attach with an address; a packet sent to an attached address reaches that host,
/// one sent to <see cref="Broadcast"/> reaches every other host. Impairments (<see cref="Conditions"/>) apply per
/// packet; <see cref="Partitioned"/> drops everything. Like raw IP, a packet arrives with the source address and the
/// hop limit its sender's engine gave (64 when it gave none); with UDP-style addresses (ports) the hop limit is
/// unknown, as a UDP link reports it.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The capture belongs to the handle CaptureTo returns, which closes it.")]
public sealed class SimLink
{
    private readonly SimulatedNetwork _network;
    private readonly SeededRandomSource _random;
    private readonly List<(SimHost Host, int Interface)> _attached = [];
    private readonly Dictionary<(SimHost, int), TimeSpan> _busyUntil = [];
    private PcapWriter? _capture;

    internal SimLink(SimulatedNetwork network, string name, LinkConditions conditions, SeededRandomSource random)
    {
        _network = network;
        Name = name;
        Conditions = conditions;
        _random = random;
    }

    /// <summary>Name.</summary>
    public string Name { get; }

    /// <summary>Impairments; may be changed at any time.</summary>
    public LinkConditions Conditions { get; set; }

    /// <summary>Whether the link drops every packet.</summary>
    public bool Partitioned { get; set; }

    /// <summary>The link's broadcast address (set by the first IPv4 attachment to a.b.c.255 unless given).</summary>
    public LinkAddress Broadcast { get; set; }

    /// <summary>Packets offered to the link.</summary>
    public long Offered { get; private set; }

    /// <summary>Packets delivered (each copy counts).</summary>
    public long Delivered { get; private set; }

    /// <summary>Packets dropped by loss, MTU, queue or partition.</summary>
    public long Dropped { get; private set; }

    /// <summary>An optional NAT in front of one host on this link.</summary>
    public SimNat? Nat { get; set; }

    /// <summary>Optional observer of every packet offered: (time, sender, source, destination, bytes).</summary>
    public Action<TimeSpan, SimHost, LinkAddress, LinkAddress, byte[]>? Observer { get; set; }

    /// <summary>Optional observer of the IP TTL / hop limit of every packet offered (<see cref="IPHopLimit.Unknown"/>: the link's default).</summary>
    public Action<SimHost, int>? HopLimitObserver { get; set; }

    /// <summary>Writes every packet offered to the link to a pcap file (raw IP, protocol 144) until disposed.</summary>
    public IDisposable CaptureTo(string path)
    {
        _capture?.Dispose();
        _capture = new PcapWriter(File.Create(path), PcapLinkType.Raw);
        return new CaptureHandle(this);
    }

    private sealed class CaptureHandle(SimLink link) : IDisposable
    {
        public void Dispose()
        {
            link._capture?.Dispose();
            link._capture = null;
        }
    }

    internal void Attach(SimHost host, int iface) => _attached.Add((host, iface));

    internal void Detach(SimHost host, int iface) => _attached.Remove((host, iface));

    internal void Transmit(SimHost sender, int senderInterface, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        Offered++;
        var now = _network.Now;
        var copy = packet.ToArray();
        Observer?.Invoke(now, sender, source, destination, copy);
        HopLimitObserver?.Invoke(sender, hopLimit);
        WriteCapture(now, source, destination, copy, hopLimit);
        var received = source.Port == 0 && destination.Port == 0 ? IPHopLimit.OrDefault(hopLimit) : IPHopLimit.Unknown;
        if (Nat is { } nat && !nat.Translate(ref source, ref destination))
        {
            Dropped++;
            return;
        }

        var c = Conditions;
        if (Partitioned || copy.Length > c.Mtu || (c.Loss > 0 && _random.NextDouble() < c.Loss))
        {
            Dropped++;
            return;
        }

        var departure = now;
        if (c.BandwidthBitsPerSecond > 0)
        {
            var key = (sender, senderInterface);
            var busy = _busyUntil.TryGetValue(key, out var b) && b > now ? b : now;
            var backlogBytes = (busy - now).TotalSeconds * c.BandwidthBitsPerSecond / 8;
            if (backlogBytes + copy.Length > c.QueueBytes)
            {
                Dropped++;
                return;
            }

            var serialization = TimeSpan.FromTicks((long)(copy.Length * 8.0 * TimeSpan.TicksPerSecond / c.BandwidthBitsPerSecond));
            departure = busy + serialization;
            _busyUntil[key] = departure;
        }

        var copies = c.Duplicate > 0 && _random.NextDouble() < c.Duplicate ? 2 : 1;
        for (var k = 0; k < copies; k++)
        {
            var arrival = departure + c.Delay;
            if (c.Jitter > TimeSpan.Zero)
            {
                arrival += TimeSpan.FromTicks((long)(_random.NextDouble() * c.Jitter.Ticks));
            }

            if (c.Reorder > 0 && _random.NextDouble() < c.Reorder)
            {
                arrival += c.ReorderDelay;
            }

            var broadcast = !Broadcast.IsNone && destination.SameAddress(Broadcast);
            foreach (var (host, iface) in _attached)
            {
                if (host == sender && iface == senderInterface)
                {
                    continue;
                }

                var address = host.Engine.Interfaces[iface].Address;
                if (broadcast || address == destination || (destination.Port == 0 && address.SameAddress(destination)))
                {
                    Delivered++;
                    var h = host;
                    var i = iface;
                    _network.Enqueue(arrival, () => h.Deliver(i, source, destination, copy, received));
                }
            }
        }
    }

    private void WriteCapture(TimeSpan now, LinkAddress source, LinkAddress destination, byte[] sal, int hopLimit)
    {
        if (_capture is null)
        {
            return;
        }

        var buf = new byte[sal.Length + 40];
        int hl;
        if (source.IsIPv4 && destination.IsIPv4)
        {
            hl = new Ipv4Repr { Source = source, Destination = destination, Protocol = 144, Ttl = IPHopLimit.OrDefault(hopLimit) }.Emit(buf, sal.Length);
        }
        else
        {
            hl = new Ipv6Repr { Source = source, Destination = destination, NextHeader = 144, HopLimit = IPHopLimit.OrDefault(hopLimit) }.Emit(buf, sal.Length);
        }

        sal.CopyTo(buf, hl);
        _capture.Write(now.Ticks * 100, buf.AsSpan(0, hl + sal.Length));
    }
}
