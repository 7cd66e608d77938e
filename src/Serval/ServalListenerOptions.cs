using Serval.Stack;
using Serval.Wire;

namespace Serval;

/// <summary>Settings of a <see cref="ServalListener"/>. Validated once by <see cref="ServalListener.ListenAsync"/>.</summary>
public sealed record ServalListenerOptions
{
    /// <summary>The host to listen on.</summary>
    public required ServalHost Host { get; init; }

    /// <summary>The service or prefix to bind (its advisory address is ignored).</summary>
    public required ServiceEndPoint ListenEndPoint { get; init; }

    /// <summary>Stream (the default) for <see cref="ServalListener.AcceptConnectionAsync"/>, or datagram for <see cref="ServalListener.AcceptDatagramSocketAsync"/>.</summary>
    public TransportProtocol Protocol { get; init; } = TransportProtocol.Stream;

    /// <summary>Most established connections waiting to be accepted (default 512, like Kestrel); handshakes beyond wait in the pending-request table until the application accepts.</summary>
    public int ListenBacklog { get; init; } = 512;

    /// <summary>
    /// The key of a self-certifying serviceID within <see cref="ListenEndPoint"/> (<see cref="ServiceKeyFile.Load"/>):
    /// connects to that serviceID that offer a key exchange get a proof that this listener holds it (docs/security.md).
    /// Connects that offer one get an authenticated flow with or without a key.
    /// </summary>
    public ServiceKey? ServiceKey { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Host, nameof(Host));
        ArgumentNullException.ThrowIfNull(ListenEndPoint, nameof(ListenEndPoint));
        if (ListenEndPoint.PrefixLength == 0 && ListenEndPoint.Service == ServiceId.Zero)
        {
            throw new ArgumentException("Listening needs a service or a prefix of at least one bit.", nameof(ListenEndPoint));
        }

        if (!Enum.IsDefined(Protocol))
        {
            throw new ArgumentException($"Unknown protocol {Protocol}.", nameof(Protocol));
        }

        if (ServiceKey is { } key && !ListenEndPoint.Prefix.Contains(key.ServiceId))
        {
            throw new ArgumentException($"The key's serviceID {key.ServiceId} is not within {ListenEndPoint.Prefix}.", nameof(ServiceKey));
        }

        if (ListenBacklog is < 1 or > 65_535)
        {
            throw new ArgumentException($"{nameof(ListenBacklog)} must be 1 to 65535 (was {ListenBacklog}).", nameof(ListenBacklog));
        }
    }
}
