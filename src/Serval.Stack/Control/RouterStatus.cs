namespace Serval.Stack.ControlPlane;

/// <summary>What a <see cref="HostController"/> knows about one of its routers.</summary>
/// <param name="Endpoint">The configured router, with the interface now used to reach it (interfaces come and go).</param>
/// <param name="Epoch">The router's epoch from its last acknowledgement (0 before the first).</param>
/// <param name="LastAckAt">When its last acknowledgement arrived, or null if it never answered.</param>
public readonly record struct RouterStatus(RouterEndpoint Endpoint, ulong Epoch, TimeSpan? LastAckAt);
