namespace Serval.Wire;

/// <summary>
/// The KEYX extension (type 9) — ours, not in the reference: the key exchange of an authenticated flow, carried by
/// the SYN (an offer) and the SYN-ACK (an acceptance, optionally with the proof that the server holds the key of a
/// self-certifying serviceID). Layout (docs/protocol.md §14.10, docs/security.md):
/// <code>
/// 0  type 0x90 | 1 length (36 or 136) | 2 kind (1 offer, 2 accept) | 3 level (1 authenticated, 2 encrypted)
/// 4  key share: the sender's ephemeral X25519 public key (32 bytes)
/// accept with proof only:
/// 36 prefix bits of the serviceID (0–128) | 37 reserved (3 bytes, 0)
/// 40 the service's Ed25519 public key (32) | 72 Ed25519 signature over the handshake transcript (64)
/// </code>
/// </summary>
public sealed class SalKeyExchange
{
    /// <summary>Extension type.</summary>
    public const byte Type = 9;

    /// <summary>Length of an offer, or an acceptance without proof.</summary>
    public const int ShortLength = 36;

    /// <summary>Length of an acceptance that carries an ownership proof.</summary>
    public const int ProofLength = 136;

    /// <summary>Length of an X25519 public key.</summary>
    public const int ShareLength = 32;

    /// <summary>Length of an Ed25519 public key.</summary>
    public const int ServiceKeyLength = 32;

    /// <summary>Length of an Ed25519 signature.</summary>
    public const int SignatureLength = 64;

    private readonly byte[] _share;
    private readonly byte[]? _serviceKey;
    private readonly byte[]? _signature;

    private SalKeyExchange(bool isAccept, byte level, byte[] share, int prefixBits, byte[]? serviceKey, byte[]? signature)
    {
        IsAccept = isAccept;
        Level = level;
        _share = share;
        PrefixBits = prefixBits;
        _serviceKey = serviceKey;
        _signature = signature;
    }

    /// <summary>An offer (SYN) of protection <paramref name="level"/> with the client's key share.</summary>
    public static SalKeyExchange Offer(byte level, ReadOnlySpan<byte> share) => new(false, level, Check(share, ShareLength), 0, null, null);

    /// <summary>An acceptance (SYN-ACK) at <paramref name="level"/> with the server's key share, without proof.</summary>
    public static SalKeyExchange Accept(byte level, ReadOnlySpan<byte> share) => new(true, level, Check(share, ShareLength), 0, null, null);

    /// <summary>An acceptance with an ownership proof: the service's public key, its prefix bits and the signature.</summary>
    public static SalKeyExchange AcceptWithProof(byte level, ReadOnlySpan<byte> share, int prefixBits, ReadOnlySpan<byte> serviceKey, ReadOnlySpan<byte> signature)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)prefixBits, 128u, nameof(prefixBits));
        return new(true, level, Check(share, ShareLength), prefixBits, Check(serviceKey, ServiceKeyLength), Check(signature, SignatureLength));
    }

    /// <summary>Whether this is a SYN-ACK's acceptance (otherwise a SYN's offer).</summary>
    public bool IsAccept { get; }

    /// <summary>The protection level: 1 authenticated, 2 authenticated and encrypted.</summary>
    public byte Level { get; }

    /// <summary>The sender's ephemeral X25519 public key.</summary>
    public ReadOnlySpan<byte> Share => _share;

    /// <summary>Whether an ownership proof is present.</summary>
    public bool HasProof => _signature is not null;

    /// <summary>The prefix length the self-certifying serviceID was made with (proof only).</summary>
    public int PrefixBits { get; }

    /// <summary>The service's Ed25519 public key (proof only; empty otherwise).</summary>
    public ReadOnlySpan<byte> ServiceKey => _serviceKey;

    /// <summary>The signature over the transcript (proof only; empty otherwise).</summary>
    public ReadOnlySpan<byte> Signature => _signature;

    /// <summary>The length this extension takes on the wire.</summary>
    public int Length => HasProof ? ProofLength : ShortLength;

    internal static bool TryRead(ReadOnlySpan<byte> ext, out SalKeyExchange? value)
    {
        value = null;
        var kind = ext[2];
        var level = ext[3];
        if (level is < 1 or > 2 || kind is < 1 or > 2)
        {
            return false;
        }

        if (ext.Length == ShortLength)
        {
            value = new SalKeyExchange(kind == 2, level, ext.Slice(4, ShareLength).ToArray(), 0, null, null);
            return true;
        }

        if (ext.Length != ProofLength || kind != 2 || ext[36] > 128 || ext[37] != 0 || ext[38] != 0 || ext[39] != 0)
        {
            return false;
        }

        value = new SalKeyExchange(true, level, ext.Slice(4, ShareLength).ToArray(), ext[36], ext.Slice(40, ServiceKeyLength).ToArray(), ext.Slice(72, SignatureLength).ToArray());
        return true;
    }

    /// <summary>Writes the extension; returns its length.</summary>
    public int Emit(Span<byte> buffer)
    {
        buffer[0] = Type << 4;
        buffer[1] = (byte)Length;
        buffer[2] = (byte)(IsAccept ? 2 : 1);
        buffer[3] = Level;
        _share.CopyTo(buffer[4..]);
        if (HasProof)
        {
            buffer[36] = (byte)PrefixBits;
            buffer[37] = 0;
            buffer[38] = 0;
            buffer[39] = 0;
            _serviceKey.CopyTo(buffer[40..]);
            _signature.CopyTo(buffer[72..]);
        }

        return Length;
    }

    private static byte[] Check(ReadOnlySpan<byte> bytes, int length) =>
        bytes.Length == length ? bytes.ToArray() : throw new ArgumentException($"Expected {length} bytes, got {bytes.Length}.");
}
