namespace Serval.Stack;

/// <summary>
/// What a connect asks of the flow's security (docs/security.md). The default asks for nothing: an ordinary SYN.
/// </summary>
/// <param name="Protection">The protection to offer in the SYN (<see cref="FlowProtection.None"/>: no offer).</param>
/// <param name="Required">
/// Fail the connect with <see cref="ServalError.SecurityNotNegotiated"/> when the server does not accept the offer,
/// instead of falling back to an ordinary flow (a peer that does not know the extension, such as the reference).
/// </param>
/// <param name="RequireOwnershipProof">
/// The serviceID is self-certifying: the server must prove it holds the service's key, or the connect fails with
/// <see cref="ServalError.OwnershipProofFailed"/>. Implies <paramref name="Required"/>.
/// </param>
public readonly record struct ConnectSecurity(FlowProtection Protection, bool Required = false, bool RequireOwnershipProof = false)
{
    /// <summary>No security (the default).</summary>
    public static ConnectSecurity None => default;

    /// <summary>Whether the SYN carries an offer.</summary>
    public bool Offers => Protection != FlowProtection.None || RequireOwnershipProof;

    /// <summary>The level offered: <see cref="Protection"/>, at least <see cref="FlowProtection.Authenticated"/> when a proof is required.</summary>
    internal FlowProtection Level => Protection == FlowProtection.None && RequireOwnershipProof ? FlowProtection.Authenticated : Protection;

    /// <summary>Whether a fallback to an ordinary flow is refused.</summary>
    internal bool MustNegotiate => Required || RequireOwnershipProof;
}
