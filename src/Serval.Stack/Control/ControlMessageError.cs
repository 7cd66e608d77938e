namespace Serval.Stack.ControlPlane;

/// <summary>Why a control-plane message was rejected by <see cref="ControlMessage.TryParse"/>. Never an exception.</summary>
public enum ControlMessageError
{
    /// <summary>No error.</summary>
    None = 0,

    /// <summary>
    /// The length is neither 76 bytes (no MAC) nor 108 bytes (MAC) — a ResolveAck: 76 plus 24 per target, up to
    /// <see cref="ControlProtocol.MaxResolveTargets"/> targets, plus 32 with a MAC —, or does not match the Authenticated flag.
    /// </summary>
    BadLength,

    /// <summary>The version byte is not 1.</summary>
    UnsupportedVersion,

    /// <summary>The type byte is not 1–6.</summary>
    UnknownType,

    /// <summary>An undefined flag bit is set, or a flag is set on a type that does not allow it.</summary>
    BadFlags,

    /// <summary>A request carries a non-zero status, or an ack an undefined one.</summary>
    BadStatus,

    /// <summary>The sender identifier is zero.</summary>
    BadSender,

    /// <summary>The weight is out of range for the type (Register: 1 to 2³¹ − 1; Unregister: 0).</summary>
    BadWeight,

    /// <summary>The lease is out of range for the type (Register: 1 ms to 1 hour; Unregister: 0).</summary>
    BadLease,

    /// <summary>The prefix length exceeds 256 bits, or bits beyond it are set.</summary>
    BadPrefix,

    /// <summary>An undefined transport bit is set.</summary>
    BadTransports,

    /// <summary>A reserved byte is not zero.</summary>
    BadReserved,

    /// <summary>A ResolveAck's target records are malformed (family, reserved bits, weight, address), or a target list where none belongs.</summary>
    BadTargets,

    /// <summary>A signature trailer on a type other than Register or Unregister, on a prefix that is not a whole serviceID (/256), or with a prefix length over 128 bits or a reserved byte set.</summary>
    BadSignatureTrailer,
}
