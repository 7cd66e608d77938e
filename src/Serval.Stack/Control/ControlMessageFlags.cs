namespace Serval.Stack.ControlPlane;

/// <summary>Flag bits of a control-plane message (docs/control-protocol.md, "Flags"). Other bits are malformed.</summary>
[Flags]
public enum ControlMessageFlags : byte
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>A 32-byte HMAC-SHA256 trailer follows the body. Set by <see cref="ControlMessage.Emit(Span{byte}, ReadOnlySpan{byte})"/> when a key is given.</summary>
    Authenticated = 0x01,

    /// <summary>Register / RegisterAck: the registration is draining (the router sends it no new connections).</summary>
    Draining = 0x02,

    /// <summary>Register: a refresh of a registration the router already acknowledged (informational).</summary>
    Refresh = 0x04,

    /// <summary>
    /// Register / Unregister of a self-certifying serviceID (docs/control-protocol.md §5.1): the 100-byte signature
    /// trailer (prefix length, Ed25519 public key, signature) follows the body. Set by <see cref="ControlMessage.Emit(Span{byte}, ReadOnlySpan{byte}, ServiceKey)"/> when a signer is given.
    /// </summary>
    Signed = 0x08,
}
