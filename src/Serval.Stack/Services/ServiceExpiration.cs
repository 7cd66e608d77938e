using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>A rule that <see cref="ServiceTable.Expire"/> removed.</summary>
/// <param name="Prefix">The prefix of the entry the rule belonged to.</param>
/// <param name="Rule">The rule as it was when it expired (its counters stay readable).</param>
/// <param name="Reason">Which timeout fired; when both are due, <see cref="ServiceExpiryReason.Hard"/>.</param>
public readonly record struct ServiceExpiration(ServicePrefix Prefix, ServiceRule Rule, ServiceExpiryReason Reason);
