using Serval.Stack;
using Serval.Wire;

namespace Serval.Simulation;

/// <summary>A simulated host: one <see cref="Engine"/> driven on the network's virtual time.</summary>
public sealed class SimHost : IPacketSink
{
    private readonly SimulatedNetwork _network;
    private readonly Dictionary<int, SimLink> _links = [];
    private TimeSpan? _wakeAt;

    internal SimHost(SimulatedNetwork network, string name, Engine engine)
    {
        _network = network;
        Name = name;
        Engine = engine;
    }

    /// <summary>Name.</summary>
    public string Name { get; }

    /// <summary>The host's engine.</summary>
    public Engine Engine { get; }

    /// <summary>Every event the engine emitted, in order (tests read and may clear it).</summary>
    public List<EngineEvent> Events { get; } = [];

    /// <summary>Called for each engine event as it is drained (after it is appended to <see cref="Events"/>).</summary>
    public Action<EngineEvent>? OnEvent { get; set; }

    /// <summary>The current virtual time.</summary>
    public TimeSpan Now => _network.Now;

    /// <summary>Attaches an interface with <paramref name="address"/> to <paramref name="link"/> and brings it up.</summary>
    public int Attach(SimLink link, LinkAddress address, bool broadcastDefaultRule = false)
    {
        ArgumentNullException.ThrowIfNull(link);
        if (link.Broadcast.IsNone && address.IsIPv4)
        {
            link.Broadcast = LinkAddress.FromIPv4((address.IPv4Value & 0xFFFFFF00) | 0xFF, address.Port);
        }

        var index = Engine.AddInterface(new InterfaceConfig
        {
            Name = $"{link.Name}",
            Address = address,
            Broadcast = broadcastDefaultRule ? link.Broadcast : LinkAddress.None,
            Mtu = link.Conditions.Mtu,
        });
        _links[index] = link;
        link.Attach(this, index);
        Engine.SetInterfaceUp(index, true, Now);
        Pump();
        return index;
    }

    /// <summary>
    /// Removes an interface for good, as when its address goes away (<see cref="Engine.RemoveInterface"/>): the link no
    /// longer delivers to it, and <see cref="Attach"/> may reuse its index once no flow refers to it.
    /// </summary>
    public void Remove(int iface)
    {
        if (_links.Remove(iface, out var link))
        {
            link.Detach(this, iface);
        }

        Engine.RemoveInterface(iface, Now);
        Pump();
    }

    /// <summary>Changes an interface's address at <paramref name="at"/> (virtual time).</summary>
    public void ChangeAddress(int iface, LinkAddress address, TimeSpan at) =>
        _network.Schedule(at, () => Do(e => e.SetInterfaceAddress(iface, address, Now)));

    /// <summary>Runs an operation on the engine at the current time, then lets it transmit and re-arm its timer.</summary>
    public T Do<T>(Func<Engine, T> operation)
    {
        ArgumentNullException.ThrowIfNull(operation);
        var r = operation(Engine);
        Pump();
        return r;
    }

    /// <summary>Runs an operation on the engine at the current time, then lets it transmit.</summary>
    public void Do(Action<Engine> operation)
    {
        ArgumentNullException.ThrowIfNull(operation);
        operation(Engine);
        Pump();
    }

    internal void Deliver(int iface, LinkAddress source, LinkAddress destination, byte[] packet, int hopLimit)
    {
        Engine.Receive(iface, source, destination, packet, hopLimit, Now);
        Pump();
    }

    /// <summary>Polls the engine, drains its events and schedules its next wake-up.</summary>
    public void Pump()
    {
        Engine.Poll(Now, this);
        while (Engine.TryGetEvent(out var e))
        {
            Events.Add(e);
            OnEvent?.Invoke(e);
        }

        var next = Engine.NextTimeout(Now);
        if (next is { } at && (_wakeAt is null || at < _wakeAt || _wakeAt < Now))
        {
            _wakeAt = at;
            _network.Schedule(at, Wake);
        }
    }

    private void Wake()
    {
        if (_wakeAt is { } w && w > Now)
        {
            return; // superseded by an earlier wake that rescheduled
        }

        _wakeAt = null;
        Pump();
    }

    void IPacketSink.Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        if (_links.TryGetValue(interfaceIndex, out var link))
        {
            link.Transmit(this, interfaceIndex, source, destination, packet, hopLimit);
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Name;
}
