using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>A registration's FORWARD rule at a router appeared (or changed weight), or went (<see cref="RouterController.RegistrationRuleChanged"/>).</summary>
/// <param name="Prefix">The registered prefix.</param>
/// <param name="Host">The registered host's address (with its UDP port).</param>
/// <param name="Weight">The rule's weight.</param>
/// <param name="Installed">True: the rule is in the table with this weight; false: it was removed.</param>
public readonly record struct RegistrationRuleChange(ServicePrefix Prefix, LinkAddress Host, uint Weight, bool Installed);
