namespace Serval.Stack.ControlPlane;

/// <summary>The outcome a router reports in an acknowledgement.</summary>
public enum ControlStatus : byte
{
    /// <summary>Applied (always 0 in requests).</summary>
    Ok = 0,

    /// <summary>
    /// Not applied: authenticated, but the epoch or timestamp is not current. The ack carries the router's epoch and
    /// clock; the sender retries with them.
    /// </summary>
    Stale = 1,

    /// <summary>Not applied: refused by policy (prefix not allowed, table or peer limit reached).</summary>
    Rejected = 2,

    /// <summary>ResolveAck only: the router knows no rule for the serviceID (a negative answer, cacheable for the lease field's time).</summary>
    NotFound = 3,
}
