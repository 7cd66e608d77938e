using System.Buffers.Binary;
using System.Security.Cryptography;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// A view over a control-plane message (docs/control-protocol.md, "Layout"). <see cref="TryCreate"/> checks the
/// version and that the length matches the Authenticated flag; afterwards no accessor throws. Field values are not
/// validated here — <see cref="ControlMessage.TryParse"/> does that.
/// </summary>
public readonly ref struct ControlMessageView
{
    private readonly ReadOnlySpan<byte> _b;

    private ControlMessageView(ReadOnlySpan<byte> b, int targets, bool signed)
    {
        _b = b;
        TargetCount = targets;
        HasSignature = signed;
    }

    /// <summary>Number of 24-byte target records after the header (ResolveAck only; 0 otherwise).</summary>
    public int TargetCount { get; }

    /// <summary>Wraps <paramref name="message"/> after checking its version and length.</summary>
    public static bool TryCreate(ReadOnlySpan<byte> message, out ControlMessageView view, out ControlMessageError error)
    {
        view = default;
        if (message.Length < ControlProtocol.BodyLength)
        {
            error = ControlMessageError.BadLength;
            return false;
        }

        if (message[0] != ControlProtocol.Version)
        {
            error = ControlMessageError.UnsupportedVersion;
            return false;
        }

        var authenticated = (message[2] & (byte)ControlMessageFlags.Authenticated) != 0;
        var signed = (message[2] & (byte)ControlMessageFlags.Signed) != 0;
        var targets = message.Length - ControlProtocol.BodyLength - (authenticated ? ControlProtocol.MacLength : 0)
            - (signed ? ControlProtocol.SignatureTrailerLength : 0);
        var targetsAllowed = message[1] == (byte)ControlMessageType.ResolveAck ? ControlProtocol.MaxResolveTargets : 0;
        if (targets < 0 || targets % ControlProtocol.TargetLength != 0 || targets / ControlProtocol.TargetLength > targetsAllowed)
        {
            error = ControlMessageError.BadLength;
            return false;
        }

        if (signed && targets != 0)
        {
            error = ControlMessageError.BadLength; // a signed message (Register, Unregister) carries no targets
            return false;
        }

        view = new ControlMessageView(message, targets / ControlProtocol.TargetLength, signed);
        error = ControlMessageError.None;
        return true;
    }

    /// <summary>Protocol version (always <see cref="ControlProtocol.Version"/> once created).</summary>
    public byte Version => _b[0];

    /// <summary>Raw type byte.</summary>
    public byte Type => _b[1];

    /// <summary>Raw flag bits.</summary>
    public byte Flags => _b[2];

    /// <summary>Raw status byte.</summary>
    public byte Status => _b[3];

    /// <summary>The sender's incarnation identifier.</summary>
    public ulong Sender => BinaryPrimitives.ReadUInt64BigEndian(_b[4..]);

    /// <summary>The sender's message sequence number.</summary>
    public uint Sequence => BinaryPrimitives.ReadUInt32BigEndian(_b[12..]);

    /// <summary>Router epoch (requests: the one the sender believes current; acks: the router's).</summary>
    public ulong Epoch => BinaryPrimitives.ReadUInt64BigEndian(_b[16..]);

    /// <summary>Router clock in milliseconds (requests: the sender's estimate; acks: the router's).</summary>
    public ulong Timestamp => BinaryPrimitives.ReadUInt64BigEndian(_b[24..]);

    /// <summary>Weight.</summary>
    public uint Weight => BinaryPrimitives.ReadUInt32BigEndian(_b[32..]);

    /// <summary>Lease in milliseconds.</summary>
    public uint LeaseMilliseconds => BinaryPrimitives.ReadUInt32BigEndian(_b[36..]);

    /// <summary>Prefix length in bits (valid: 0–256).</summary>
    public ushort PrefixLength => BinaryPrimitives.ReadUInt16BigEndian(_b[40..]);

    /// <summary>Raw transport bits.</summary>
    public byte Transports => _b[42];

    /// <summary>Reserved byte (must be zero).</summary>
    public byte Reserved => _b[43];

    /// <summary>The prefix's 32 serviceID bytes.</summary>
    public ServiceId ServiceId => ServiceId.Read(_b[44..]);

    /// <summary>Whether a MAC trailer is present.</summary>
    public bool HasMac => _b.Length == BodyLength + ControlProtocol.MacLength;

    /// <summary>The bytes the MAC covers: the 76-byte header and the target records or the signature trailer.</summary>
    public ReadOnlySpan<byte> Body => _b[..BodyLength];

    /// <summary>The MAC trailer (empty when absent).</summary>
    public ReadOnlySpan<byte> Mac => _b[BodyLength..];

    /// <summary>Whether the signature trailer (flag Signed) follows the 76-byte header.</summary>
    public bool HasSignature { get; }

    /// <summary>Signed messages: the length of the prefix the self-certifying serviceID was made under (valid: 0–128).</summary>
    public byte SignerPrefixLength => HasSignature ? _b[ControlProtocol.BodyLength] : (byte)0;

    /// <summary>Signed messages: the three reserved bytes after the prefix length are zero.</summary>
    public bool SignatureReservedZero =>
        !HasSignature || (_b[ControlProtocol.BodyLength + 1] | _b[ControlProtocol.BodyLength + 2] | _b[ControlProtocol.BodyLength + 3]) == 0;

    /// <summary>Signed messages: the 32-byte Ed25519 public key of the serviceID (empty otherwise).</summary>
    public ReadOnlySpan<byte> SignerPublicKey => HasSignature ? _b.Slice(ControlProtocol.BodyLength + 4, 32) : default;

    /// <summary>Signed messages: the 64-byte Ed25519 signature (empty otherwise).</summary>
    public ReadOnlySpan<byte> Signature => HasSignature ? _b.Slice(ControlProtocol.BodyLength + ControlProtocol.SignedTrailerLength, 64) : default;

    /// <summary>
    /// Checks the signature trailer of a signed Register or Unregister (docs/control-protocol.md §5.1): the public key
    /// with the prefix length must make the message's serviceID (<see cref="ServiceId.IsCertifiedBy"/>), and the
    /// signature must be the key's over the label, the 76-byte header and the trailer's first 36 bytes. The header
    /// holds the sender, sequence number, router epoch and timestamp, which make the signed message fresh.
    /// </summary>
    public RegistrationSignatureCheck VerifySignature()
    {
        if (!HasSignature)
        {
            return RegistrationSignatureCheck.Missing;
        }

        if (PrefixLength != ServiceId.Bits || !ServiceId.IsCertifiedBy(SignerPublicKey, SignerPrefixLength))
        {
            return RegistrationSignatureCheck.ForeignKey;
        }

        var label = ControlProtocol.SignatureLabel;
        Span<byte> signed = stackalloc byte[label.Length + ControlProtocol.BodyLength + ControlProtocol.SignedTrailerLength];
        label.CopyTo(signed);
        _b[..(ControlProtocol.BodyLength + ControlProtocol.SignedTrailerLength)].CopyTo(signed[label.Length..]);
        return ServiceKey.Verify(SignerPublicKey, signed, Signature) ? RegistrationSignatureCheck.Valid : RegistrationSignatureCheck.BadSignature;
    }

    /// <summary>The raw bytes of target record <paramref name="index"/> (0 … <see cref="TargetCount"/> − 1).</summary>
    public ReadOnlySpan<byte> Target(int index) =>
        (uint)index < (uint)TargetCount
            ? _b.Slice(ControlProtocol.BodyLength + (index * ControlProtocol.TargetLength), ControlProtocol.TargetLength)
            : throw new ArgumentOutOfRangeException(nameof(index));

    private int BodyLength => ControlProtocol.BodyLength + (TargetCount * ControlProtocol.TargetLength)
        + (HasSignature ? ControlProtocol.SignatureTrailerLength : 0);

    /// <summary>Whether the MAC is present and is HMAC-SHA256 of <see cref="Body"/> under <paramref name="key"/> (constant-time compare).</summary>
    public bool VerifyMac(ReadOnlySpan<byte> key)
    {
        if (!HasMac || key.IsEmpty)
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[ControlProtocol.MacLength];
        HMACSHA256.HashData(key, Body, expected);
        return CryptographicOperations.FixedTimeEquals(expected, Mac);
    }
}

/// <summary>The outcome of <see cref="ControlMessageView.VerifySignature"/>.</summary>
public enum RegistrationSignatureCheck
{
    /// <summary>The message carries no signature trailer.</summary>
    Missing,

    /// <summary>The key, under the prefix length given, makes the message's serviceID and the signature verifies.</summary>
    Valid,

    /// <summary>The key does not make the message's serviceID (a key of another serviceID), or the prefix is not a whole serviceID.</summary>
    ForeignKey,

    /// <summary>The key makes the serviceID but the signature does not verify (forged or altered).</summary>
    BadSignature,
}
