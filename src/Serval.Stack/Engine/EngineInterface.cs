using Serval.Wire;

namespace Serval.Stack;

/// <summary>The engine's view of one interface.</summary>
internal sealed class EngineInterface(int index, InterfaceConfig config)
{
    public int Index { get; } = index;

    public string Name { get; } = config.Name;

    public LinkAddress Address { get; set; } = config.Address;

    public LinkAddress Broadcast { get; set; } = config.Broadcast;

    public int Mtu { get; } = config.Mtu;

    /// <summary>See <see cref="InterfaceConfig.RewritesSource"/>.</summary>
    public bool RewritesSource { get; } = config.RewritesSource;

    public bool IsUp { get; set; }

    public bool IsLoopback { get; init; }

    /// <summary>Removed for good (<see cref="Engine.RemoveInterface"/>): down, and its index reusable once no flow refers to it.</summary>
    public bool IsRemoved { get; set; }
}
