using Serval.Wire;

namespace Serval.Stack;

/// <summary>A snapshot of an interface for inspection.</summary>
/// <param name="Index">Interface index (0 is the engine's loopback).</param>
/// <param name="Name">Name.</param>
/// <param name="Address">Address.</param>
/// <param name="Broadcast">Broadcast address or none.</param>
/// <param name="Mtu">Largest SAL packet.</param>
/// <param name="IsUp">Whether the interface is up.</param>
public readonly record struct InterfaceInfo(int Index, string Name, LinkAddress Address, LinkAddress Broadcast, int Mtu, bool IsUp);
