using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// Constants of Serval's control-plane protocol (docs/control-protocol.md): registration messages carried as
/// payloads of unconnected Serval datagrams to a well-known router serviceID.
/// </summary>
public static class ControlProtocol
{
    /// <summary>The protocol version this implementation speaks.</summary>
    public const byte Version = 1;

    /// <summary>Length of a message body (everything the MAC covers).</summary>
    public const int BodyLength = 76;

    /// <summary>Length of the HMAC-SHA256 trailer.</summary>
    public const int MacLength = 32;

    /// <summary>Length of an authenticated message (body + MAC).</summary>
    public const int AuthenticatedLength = BodyLength + MacLength;

    /// <summary>
    /// Length of the signature trailer of a signed Register or Unregister (docs/control-protocol.md §5.1): the
    /// self-certifying prefix length (1 byte), 3 reserved bytes, the 32-byte Ed25519 public key and the 64-byte signature.
    /// </summary>
    public const int SignatureTrailerLength = 100;

    /// <summary>The part of the signature trailer the signature covers (prefix length, reserved bytes, public key).</summary>
    internal const int SignedTrailerLength = 36;

    /// <summary>What a registration signature is over: this label, the 76-byte body, then the first 36 bytes of the trailer.</summary>
    internal static ReadOnlySpan<byte> SignatureLabel => "serval registration v1"u8;

    /// <summary>Length of one target record of a ResolveAck: family, reserved, port, weight, 16 address bytes.</summary>
    public const int TargetLength = 24;

    /// <summary>Most targets one ResolveAck carries (its length stays below 3.6 times a Resolve's).</summary>
    public const int MaxResolveTargets = 8;

    /// <summary>Longest message: a ResolveAck with <see cref="MaxResolveTargets"/> targets and a MAC (300 bytes).</summary>
    public const int MaxMessageLength = AuthenticatedLength + (MaxResolveTargets * TargetLength);

    /// <summary>Shortest key accepted for HMAC authentication, in bytes.</summary>
    public const int MinKeyLength = 16;

    /// <summary>Longest lease a Register may ask for, in milliseconds (one hour).</summary>
    public const uint MaxLeaseMilliseconds = 3_600_000;

    /// <summary>Largest weight a Register may carry (the service table's limit).</summary>
    public const uint MaxWeight = int.MaxValue;

    /// <summary>
    /// The well-known serviceID routers listen on: SHA-256 of the UTF-8 name <c>serval.router</c>
    /// (<c>ServiceId.FromName("serval.router")</c>). Deliberately not the reference's 88888, whose servd speaks a
    /// different format.
    /// </summary>
    public static ServiceId RouterServiceId { get; } = ServiceId.FromName("serval.router");

    /// <summary>
    /// The well-known serviceID router advertisements are sent to (docs/control-protocol.md §12): SHA-256 of the UTF-8
    /// name <c>serval.router.advertise</c>. Hosts that discover routers bind it.
    /// </summary>
    public static ServiceId AdvertiseServiceId { get; } = ServiceId.FromName("serval.router.advertise");

    /// <summary>
    /// The well-known serviceID router solicitations are sent to (docs/control-protocol.md §12): SHA-256 of the UTF-8
    /// name <c>serval.router.solicit</c>. Advertising routers bind it.
    /// </summary>
    public static ServiceId SolicitServiceId { get; } = ServiceId.FromName("serval.router.solicit");
}
