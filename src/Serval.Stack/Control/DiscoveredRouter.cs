namespace Serval.Stack.ControlPlane;

/// <summary>A service router a <see cref="RouterDiscoveryController"/> learned from an advertisement.</summary>
/// <param name="Endpoint">The router's address (the advertisement's source), the interface it was heard on and its serviceID.</param>
/// <param name="Epoch">The epoch the router's last advertisement carried.</param>
/// <param name="DiscoveredAt">When its first advertisement was accepted.</param>
/// <param name="ExpiresAt">When it is forgotten unless another advertisement comes.</param>
/// <param name="Registered">How many of the host's prefixes this router has acknowledged.</param>
public readonly record struct DiscoveredRouter(RouterEndpoint Endpoint, ulong Epoch, TimeSpan DiscoveredAt, TimeSpan ExpiresAt, int Registered);
