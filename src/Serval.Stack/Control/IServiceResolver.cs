using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// The DELAY resolution plug-in point (docs/design.md, "on demand"): given the serviceID of a packet a DELAY rule
/// holds, says where it should go. Called on the engine's thread by <see cref="ResolverController"/>; it must not
/// block — a resolver that asks a remote system answers <see cref="ServiceResolution.Pending"/> and completes
/// through <see cref="ResolverController.Complete"/>.
/// </summary>
public interface IServiceResolver
{
    /// <summary>The resolution of <paramref name="service"/>, <see cref="ServiceResolution.Pending"/>, or null when it cannot be resolved (the packet is dropped).</summary>
    ServiceResolution? Resolve(ServiceId service, TimeSpan now);
}
