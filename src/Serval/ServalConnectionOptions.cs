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

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Host, nameof(Host));
        if (Service.IsZero)
        {
            throw new ArgumentException("The zero serviceID names no service.", nameof(Service));
        }
    }
}
