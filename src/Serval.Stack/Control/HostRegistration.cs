using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>A snapshot of one prefix a <see cref="HostController"/> keeps registered.</summary>
/// <param name="Prefix">The registered prefix.</param>
/// <param name="Weight">The weight sent to the routers.</param>
/// <param name="Draining">Whether the routers were asked to send it no new connections.</param>
/// <param name="Transports">Transports bound on the prefix.</param>
/// <param name="AcknowledgedBy">How many routers acknowledged the current registration.</param>
public readonly record struct HostRegistration(ServicePrefix Prefix, uint Weight, bool Draining, ServiceTransports Transports, int AcknowledgedBy);
