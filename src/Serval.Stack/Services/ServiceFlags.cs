namespace Serval.Stack.Services;

/// <summary>
/// Service flags carried with a rule (the reference's <c>sv_flags</c>): bits 0–1 are the scope, then strict
/// scope, anycast and multicast. The table stores them and reports them per priority set; it does not interpret
/// them (the engine decides between anycast and all mode, for example by looking at <see cref="Multicast"/>).
/// </summary>
[Flags]
public enum ServiceFlags : byte
{
    /// <summary>No flags: host scope.</summary>
    None = 0,

    /// <summary>Scope: local.</summary>
    ScopeLocal = 0x01,

    /// <summary>Scope: domain.</summary>
    ScopeDomain = 0x02,

    /// <summary>Scope: global (both scope bits).</summary>
    ScopeGlobal = ScopeLocal | ScopeDomain,

    /// <summary>The scope is strict.</summary>
    StrictScope = 0x08,

    /// <summary>The service is anycast.</summary>
    Anycast = 0x10,

    /// <summary>The service is multicast: every target of the top set should receive the packet.</summary>
    Multicast = 0x20,
}
