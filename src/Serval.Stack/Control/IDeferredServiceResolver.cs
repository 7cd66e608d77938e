namespace Serval.Stack.ControlPlane;

/// <summary>
/// A resolver that answers some lookups later (<see cref="ServiceResolution.Pending"/>): the
/// <see cref="ResolverController"/> it is given to attaches itself, and the resolver delivers those answers through
/// <see cref="ResolverController.Complete"/>.
/// </summary>
public interface IDeferredServiceResolver : IServiceResolver
{
    /// <summary>Called once, by the <see cref="ResolverController"/> constructor.</summary>
    void Attach(ResolverController controller);
}
