using Serval.Wire;

namespace Serval.Resolution;

/// <summary>
/// A source of answers for on-demand resolution (docs/resolution.md): given the serviceID of a packet a DELAY rule
/// holds, says where it goes. A host started with <see cref="ServalHostOptions.Resolver"/> asks its sources in order
/// on a thread-pool thread (never the engine's) and installs the first positive answer as FORWARD rules.
/// </summary>
public interface IAsyncServiceResolver
{
    /// <summary>
    /// The answer for <paramref name="service"/>: <see cref="ResolverAnswer.Found"/> or <see cref="ResolverAnswer.NotFound"/>.
    /// Throw when the lookup itself failed (a server did not answer): the host logs it, asks the next source, and
    /// remembers nothing.
    /// </summary>
    ValueTask<ResolverAnswer> ResolveAsync(ServiceId service, CancellationToken cancellationToken);
}
