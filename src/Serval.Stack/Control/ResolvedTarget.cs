using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>A next hop a resolver found for a service: a FORWARD target with its weight.</summary>
/// <param name="Address">The next hop's link address (with port on UDP links).</param>
/// <param name="Interface">Index of the interface that reaches it.</param>
/// <param name="Weight">Weight among the resolution's targets (1 to 2³¹ − 1).</param>
public readonly record struct ResolvedTarget(LinkAddress Address, int Interface, uint Weight = 1);
