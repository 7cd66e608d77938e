namespace Serval.Stack.Services;

/// <summary>Outcome of a service-table update. Only <see cref="Ok"/> changes the table.</summary>
public enum ServiceTableResult
{
    /// <summary>The update was applied.</summary>
    Ok = 0,

    /// <summary>The entry already holds a target with the same identity (in any priority set).</summary>
    AlreadyExists,

    /// <summary>No entry with that exact prefix, or no target with that identity in it.</summary>
    NotFound,

    /// <summary>
    /// The target is malformed: an undefined type; FORWARD without an address or with a negative interface;
    /// DEMUX without a socket handle or with a protocol other than 6 or 17; fields that do not belong to the
    /// type; or a new address given for a target that is not FORWARD.
    /// </summary>
    InvalidTarget,

    /// <summary>The priority is above <see cref="ServiceTable.MaxPriority"/>.</summary>
    InvalidPriority,

    /// <summary>The weight is above <see cref="ServiceTable.MaxWeight"/>.</summary>
    InvalidWeight,

    /// <summary>A timeout is zero or negative.</summary>
    InvalidTimeout,
}
