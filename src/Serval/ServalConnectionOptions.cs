using Serval.Stack;
using Serval.Wire;

namespace Serval;

/// <summary>Settings of a connection (<see cref="ServalConnection.ConnectAsync"/>, <see cref="ServalDatagramSocket.ConnectAsync"/>). Validated once at the entry point.</summary>
public sealed record ServalConnectionOptions
{
    /// <summary>The host to connect from.</summary>
    public required ServalHost Host { get; init; }

    /// <summary>The service to connect to. Resolved late, hop by hop, through service tables.</summary>
    public required ServiceId Service { get; init; }

    /// <summary>
    /// A link address to send the SYN to instead of resolving it (the host that serves the service, or a router), or
    /// <see cref="LinkAddress.None"/> (the default). Port 0 means the link's own port.
    /// </summary>
    public LinkAddress AdvisoryAddress { get; init; }

    /// <summary>
    /// The name <see cref="Service"/> was hashed from (<see cref="ServiceId.FromName(string)"/>), or null: the
    /// <c>serval.connect</c> span and the host's log lines name the service with it. Never sent on the wire.
    /// </summary>
    public string? ServiceName { get; init; }

    /// <summary>
    /// The protection to offer for the flow's packets (docs/security.md): <see cref="FlowProtection.None"/> (the
    /// default: an ordinary SYN), <see cref="FlowProtection.Authenticated"/> or <see cref="FlowProtection.Encrypted"/>.
    /// A server that does not accept the offer (or does not know it) gives an ordinary flow unless
    /// <see cref="RequireSecurity"/> or <see cref="RequireOwnershipProof"/> is set.
    /// </summary>
    public FlowProtection Protection { get; init; }

    /// <summary>Fail the connect (<see cref="ServalError.SecurityNotNegotiated"/>) rather than fall back to an ordinary flow.</summary>
    public bool RequireSecurity { get; init; }

    /// <summary>
    /// <see cref="Service"/> is self-certifying: the server must prove it holds its key, or the connect fails with
    /// <see cref="ServalError.OwnershipProofFailed"/>. Implies an authenticated flow.
    /// </summary>
    public bool RequireOwnershipProof { get; init; }

    /// <summary>The engine's view of the security settings.</summary>
    internal ConnectSecurity Security => new(Protection, RequireSecurity, RequireOwnershipProof);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Host, nameof(Host));
        if (Service.IsZero)
        {
            throw new ArgumentException("The zero serviceID names no service.", nameof(Service));
        }

        if (!Enum.IsDefined(Protection))
        {
            throw new ArgumentException($"Unknown protection {Protection}.", nameof(Protection));
        }
    }
}
