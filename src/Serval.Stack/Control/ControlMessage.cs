using System.Buffers.Binary;
using System.Security.Cryptography;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// A control-plane message (docs/control-protocol.md): one registration, unregistration, resolution query or
/// acknowledgement, carried as the payload of an unconnected Serval datagram. <see cref="TryParse"/> validates every
/// field; malformed input is <c>false</c> and a <see cref="ControlMessageError"/>, never an exception.
/// <see cref="Emit(Span{byte}, ReadOnlySpan{byte}, ServiceKey)"/> writes the 76-byte body (a ResolveAck: followed by its target records) and, given a key, the
/// HMAC-SHA256 trailer.
/// </summary>
public readonly record struct ControlMessage
{
    /// <summary>What the message is.</summary>
    public ControlMessageType Type { get; init; }

    /// <summary>
    /// Flags. <see cref="ControlMessageFlags.Authenticated"/> is set by <see cref="TryParse"/> when a MAC is present
    /// (not verified — see <see cref="ControlMessageView.VerifyMac"/>) and ignored by <see cref="Emit(Span{byte}, ReadOnlySpan{byte}, ServiceKey)"/>, which sets
    /// it from the key.
    /// </summary>
    public ControlMessageFlags Flags { get; init; }

    /// <summary>Acks: the outcome. Requests: <see cref="ControlStatus.Ok"/>.</summary>
    public ControlStatus Status { get; init; }

    /// <summary>The requesting controller's incarnation identifier (random, non-zero); acks echo it.</summary>
    public ulong Sender { get; init; }

    /// <summary>The requester's sequence number (one per message sent); acks echo it.</summary>
    public uint Sequence { get; init; }

    /// <summary>Requests: the router epoch the sender last learned (0 = unknown). Acks: the router's epoch.</summary>
    public ulong Epoch { get; init; }

    /// <summary>Requests: the sender's estimate of the router clock (ms). Acks: the router clock (ms).</summary>
    public ulong Timestamp { get; init; }

    /// <summary>Register: the weight of the FORWARD rule (1 to 2³¹ − 1). Acks: echoed. Unregister: 0.</summary>
    public uint Weight { get; init; }

    /// <summary>Register: the lease asked for (ms). RegisterAck: the lease granted. Unregister: 0.</summary>
    public uint LeaseMilliseconds { get; init; }

    /// <summary>The registered prefix.</summary>
    public ServicePrefix Prefix { get; init; }

    /// <summary>Transports bound on the prefix (informational).</summary>
    public ServiceTransports Transports { get; init; }

    /// <summary>
    /// ResolveAck: where the prefix resolves (at most <see cref="ControlProtocol.MaxResolveTargets"/> FORWARD targets,
    /// each an address with port and a weight); empty for every other type and for a ResolveAck that is not Ok.
    /// </summary>
    /// <remarks>Equality of two messages compares this list by reference (compare the elements when it matters).</remarks>
    public IReadOnlyList<ControlTarget> Targets
    {
        get => _targets ?? [];
        init => _targets = value is { Count: > 0 } ? value : null;
    }

    private readonly IReadOnlyList<ControlTarget>? _targets;

    /// <summary>Whether a MAC trailer was present when parsed.</summary>
    public bool IsAuthenticated => (Flags & ControlMessageFlags.Authenticated) != 0;

    /// <summary>Whether <see cref="Type"/> is an acknowledgement.</summary>
    public bool IsAck => Type is ControlMessageType.RegisterAck or ControlMessageType.UnregisterAck or ControlMessageType.ResolveAck;

    /// <summary>The lease as a time span.</summary>
    public TimeSpan Lease => TimeSpan.FromMilliseconds(LeaseMilliseconds);

    /// <summary>Whether the signature trailer of a self-certifying serviceID was present when parsed (not verified — see <see cref="ControlMessageView.VerifySignature"/>).</summary>
    public bool IsSigned => (Flags & ControlMessageFlags.Signed) != 0;

    /// <summary>Bytes <see cref="Emit(Span{byte}, ReadOnlySpan{byte}, ServiceKey)"/> writes: 76, or 108 with a key; plus 24 per target of a ResolveAck; plus 100 when signed.</summary>
    public static int GetLength(bool authenticated, int targets = 0, bool signed = false) =>
        (authenticated ? ControlProtocol.AuthenticatedLength : ControlProtocol.BodyLength) + (targets * ControlProtocol.TargetLength)
        + (signed ? ControlProtocol.SignatureTrailerLength : 0);

    /// <summary>Parses and validates a whole message (docs/control-protocol.md, "Validation").</summary>
    public static bool TryParse(ReadOnlySpan<byte> data, out ControlMessage message, out ControlMessageError error)
    {
        message = default;
        if (!ControlMessageView.TryCreate(data, out var v, out error))
        {
            return false;
        }

        error = Validate(v);
        if (error != ControlMessageError.None)
        {
            return false;
        }

        ControlTarget[]? targets = null;
        if (v.TargetCount > 0)
        {
            targets = new ControlTarget[v.TargetCount];
            for (var i = 0; i < targets.Length; i++)
            {
                if (!ControlTarget.TryRead(v.Target(i), out targets[i]))
                {
                    error = ControlMessageError.BadTargets;
                    return false;
                }
            }
        }

        message = new ControlMessage
        {
            Type = (ControlMessageType)v.Type,
            Flags = (ControlMessageFlags)v.Flags,
            Status = (ControlStatus)v.Status,
            Sender = v.Sender,
            Sequence = v.Sequence,
            Epoch = v.Epoch,
            Timestamp = v.Timestamp,
            Weight = v.Weight,
            LeaseMilliseconds = v.LeaseMilliseconds,
            Prefix = new ServicePrefix(v.ServiceId, v.PrefixLength),
            Transports = (ServiceTransports)v.Transports,
            Targets = targets!,
        };
        return true;
    }

    private static ControlMessageError Validate(ControlMessageView v)
    {
        if (v.Type is < (byte)ControlMessageType.Register or > (byte)ControlMessageType.RouterAdvertise)
        {
            return ControlMessageError.UnknownType;
        }

        var type = (ControlMessageType)v.Type;
        var flags = (ControlMessageFlags)v.Flags;
        var allowed = ControlMessageFlags.Authenticated | type switch
        {
            ControlMessageType.Register => ControlMessageFlags.Draining | ControlMessageFlags.Refresh | ControlMessageFlags.Signed,
            ControlMessageType.Unregister => ControlMessageFlags.Signed,
            ControlMessageType.RegisterAck => ControlMessageFlags.Draining,
            _ => ControlMessageFlags.None,
        };
        if ((flags & ~allowed) != 0)
        {
            return ControlMessageError.BadFlags;
        }

        var ack = type is ControlMessageType.RegisterAck or ControlMessageType.UnregisterAck or ControlMessageType.ResolveAck;
        var maxStatus = type == ControlMessageType.ResolveAck ? ControlStatus.NotFound : ControlStatus.Rejected;
        if (ack ? v.Status > (byte)maxStatus : v.Status != 0)
        {
            return ControlMessageError.BadStatus;
        }

        if (type == ControlMessageType.ResolveAck && (v.Status == (byte)ControlStatus.Ok) != (v.TargetCount > 0))
        {
            return ControlMessageError.BadTargets; // an Ok answer has targets; the others have none
        }

        if (v.Sender == 0)
        {
            return ControlMessageError.BadSender;
        }

        var weightOk = type switch
        {
            ControlMessageType.Register => v.Weight is >= 1 and <= ControlProtocol.MaxWeight,
            ControlMessageType.Unregister or ControlMessageType.Resolve or ControlMessageType.ResolveAck
                or ControlMessageType.RouterSolicit or ControlMessageType.RouterAdvertise => v.Weight == 0,
            _ => v.Weight <= ControlProtocol.MaxWeight,
        };
        if (!weightOk)
        {
            return ControlMessageError.BadWeight;
        }

        var leaseOk = type switch
        {
            ControlMessageType.Register => v.LeaseMilliseconds is >= 1 and <= ControlProtocol.MaxLeaseMilliseconds,
            ControlMessageType.Unregister or ControlMessageType.Resolve or ControlMessageType.RouterSolicit => v.LeaseMilliseconds == 0,
            ControlMessageType.RouterAdvertise => v.LeaseMilliseconds is >= 1 and <= ControlProtocol.MaxLeaseMilliseconds,
            _ => v.LeaseMilliseconds <= ControlProtocol.MaxLeaseMilliseconds,
        };
        if (!leaseOk)
        {
            return ControlMessageError.BadLease;
        }

        if (v.PrefixLength > ServiceId.Bits || v.ServiceId.Truncate(v.PrefixLength) != v.ServiceId
            || (type is ControlMessageType.Resolve or ControlMessageType.RouterAdvertise && v.PrefixLength != ServiceId.Bits)
            || (type == ControlMessageType.RouterAdvertise && v.ServiceId.IsZero)
            || (type == ControlMessageType.RouterSolicit && v.PrefixLength != 0))
        {
            // A Resolve asks for one serviceID and an advertisement names the router's (/256); a solicitation names none (/0).
            return ControlMessageError.BadPrefix;
        }

        if ((v.Transports & ~(byte)(ServiceTransports.Stream | ServiceTransports.Datagram)) != 0
            || (type is ControlMessageType.RouterSolicit or ControlMessageType.RouterAdvertise && v.Transports != 0))
        {
            return ControlMessageError.BadTransports;
        }

        if (v.Reserved != 0)
        {
            return ControlMessageError.BadReserved;
        }

        return v.HasSignature && (v.PrefixLength != ServiceId.Bits || v.SignerPrefixLength > ServiceId.MaxSelfCertifyingPrefixLength || !v.SignatureReservedZero)
            ? ControlMessageError.BadSignatureTrailer
            : ControlMessageError.None;
    }

    /// <summary>
    /// Writes the message into <paramref name="buffer"/>: the body (a ResolveAck: followed by its
    /// <see cref="Targets"/>), and with a non-empty <paramref name="key"/> the Authenticated flag and the HMAC-SHA256
    /// trailer. Returns the number of bytes written (76 or 108, plus 24 per target).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="buffer"/> is too small, or targets on a type other than ResolveAck or more than <see cref="ControlProtocol.MaxResolveTargets"/>.</exception>
    public int Emit(Span<byte> buffer, ReadOnlySpan<byte> key = default) => Emit(buffer, key, null);

    /// <summary>
    /// Writes the message as <see cref="Emit(Span{byte}, ReadOnlySpan{byte})"/> does; with <paramref name="signer"/> (a
    /// Register or Unregister of the signer's serviceID, /256) also the Signed flag and the signature trailer
    /// (docs/control-protocol.md §5.1), before the MAC. Returns the number of bytes written.
    /// </summary>
    /// <exception cref="ArgumentException">As the other overload; or a signer on another type or another prefix than its serviceID.</exception>
    public int Emit(Span<byte> buffer, ReadOnlySpan<byte> key, ServiceKey? signer)
    {
        var authenticated = !key.IsEmpty;
        var signed = signer is not null;
        if (signer is not null && (Type is not (ControlMessageType.Register or ControlMessageType.Unregister) || Prefix != ServicePrefix.Exact(signer.ServiceId)))
        {
            throw new ArgumentException($"Only a Register or Unregister of the key's serviceID (/256) is signed (was a {Type} of {Prefix}).", nameof(signer));
        }

        var targets = Targets;
        if (targets.Count > (Type == ControlMessageType.ResolveAck ? ControlProtocol.MaxResolveTargets : 0))
        {
            throw new ArgumentException($"A {Type} message carries at most {(Type == ControlMessageType.ResolveAck ? ControlProtocol.MaxResolveTargets : 0)} targets.", nameof(buffer));
        }

        var length = GetLength(authenticated, targets.Count, signed);
        if (buffer.Length < length)
        {
            throw new ArgumentException($"A control message needs {length} bytes; the buffer has {buffer.Length}.", nameof(buffer));
        }

        var flags = Flags & ~(ControlMessageFlags.Authenticated | ControlMessageFlags.Signed);
        if (authenticated)
        {
            flags |= ControlMessageFlags.Authenticated;
        }

        if (signed)
        {
            flags |= ControlMessageFlags.Signed;
        }

        buffer[0] = ControlProtocol.Version;
        buffer[1] = (byte)Type;
        buffer[2] = (byte)flags;
        buffer[3] = (byte)Status;
        BinaryPrimitives.WriteUInt64BigEndian(buffer[4..], Sender);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[12..], Sequence);
        BinaryPrimitives.WriteUInt64BigEndian(buffer[16..], Epoch);
        BinaryPrimitives.WriteUInt64BigEndian(buffer[24..], Timestamp);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[32..], Weight);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[36..], LeaseMilliseconds);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[40..], (ushort)Prefix.Length);
        buffer[42] = (byte)Transports;
        buffer[43] = 0;
        Prefix.Id.WriteTo(buffer[44..]);
        var body = ControlProtocol.BodyLength;
        foreach (var t in targets)
        {
            t.Write(buffer.Slice(body, ControlProtocol.TargetLength));
            body += ControlProtocol.TargetLength;
        }

        if (signer is not null)
        {
            var trailer = buffer.Slice(body, ControlProtocol.SignatureTrailerLength);
            trailer[0] = (byte)signer.Prefix.Length;
            trailer[1..4].Clear();
            signer.PublicKey.CopyTo(trailer[4..]);
            var label = ControlProtocol.SignatureLabel;
            Span<byte> data = stackalloc byte[label.Length + ControlProtocol.BodyLength + ControlProtocol.SignedTrailerLength];
            label.CopyTo(data);
            buffer[..ControlProtocol.BodyLength].CopyTo(data[label.Length..]);
            trailer[..ControlProtocol.SignedTrailerLength].CopyTo(data[(label.Length + ControlProtocol.BodyLength)..]);
            signer.Sign(data, trailer[ControlProtocol.SignedTrailerLength..]);
            body += ControlProtocol.SignatureTrailerLength;
        }

        if (authenticated)
        {
            HMACSHA256.HashData(key, buffer[..body], buffer[body..length]);
        }

        return length;
    }
}
