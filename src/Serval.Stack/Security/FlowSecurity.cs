using System.Buffers.Binary;
using System.Security.Cryptography;
using NSec.Cryptography;
using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// One flow's security state (docs/security.md): the ephemeral X25519 key of the handshake, then the two directions'
/// AES-256-GCM keys and IVs, the next packet number to send and the replay window of packets received. AES-GCM is
/// libsodium's (NSec) where the processor has AES instructions, .NET's otherwise: the same algorithm, the same bytes.
/// </summary>
internal sealed class FlowSecurity : IDisposable
{
    /// <summary>Packets this far behind the highest packet number received are refused as replays.</summary>
    public const int ReplayWindow = 256;

    private static readonly byte[] TranscriptLabel = "serval keyx v1"u8.ToArray();
    private static readonly byte[] ProofLabel = "serval ownership proof v1"u8.ToArray();
    private static readonly byte[] KeyLabel = "serval flow keys v1"u8.ToArray();

    private static readonly AeadAlgorithm Aead = AeadAlgorithm.Aes256Gcm;
    private static readonly bool NativeAead = Aes256Gcm.IsSupported;
    private byte[]? _ephemeral;
    private Key? _sendKey;
    private Key? _receiveKey;
    private AesGcm? _send;
    private AesGcm? _receive;
    private readonly byte[] _sendIv = new byte[12];
    private readonly byte[] _receiveIv = new byte[12];
    private ulong _nextPacketNumber;
    private ulong _highest;
    private bool _receivedAny;
    private readonly ulong[] _window = new ulong[ReplayWindow / 64];

    private FlowSecurity(FlowProtection level, bool mustNegotiate, bool requireProof, byte[] ephemeral)
    {
        Level = level;
        MustNegotiate = mustNegotiate;
        RequireProof = requireProof;
        _ephemeral = ephemeral;
        LocalShare = new byte[X25519.Length];
        X25519.PublicKey(ephemeral, LocalShare);
    }

    /// <summary>The protection this side offered or accepted.</summary>
    public FlowProtection Level { get; private set; }

    /// <summary>Client: fail rather than fall back to an ordinary flow.</summary>
    public bool MustNegotiate { get; }

    /// <summary>Client: the server must prove it holds the serviceID's key.</summary>
    public bool RequireProof { get; }

    /// <summary>Client: the SYN still carries the offer (false after the fallback on retransmission).</summary>
    public bool Offering { get; set; } = true;

    /// <summary>Our ephemeral X25519 public key.</summary>
    public byte[] LocalShare { get; }

    /// <summary>Whether the server proved ownership of the serviceID in this handshake.</summary>
    public bool OwnershipProved { get; private set; }

    /// <summary>Whether keys are in place: every packet of the flow is sealed and must open.</summary>
    public bool Established { get; private set; }

    /// <summary>Server: the acceptance the SYN-ACK carries (kept for its retransmissions).</summary>
    public SalKeyExchange? Acceptance { get; private set; }

    /// <summary>A new handshake state with an ephemeral key drawn from <paramref name="random"/>.</summary>
    public static FlowSecurity Create(FlowProtection level, bool mustNegotiate, bool requireProof, IRandomSource random)
    {
        var seed = new byte[X25519.Length];
        for (var i = 0; i < X25519.Length; i += 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(seed.AsSpan(i), random.NextUInt64());
        }

        return new FlowSecurity(level, mustNegotiate, requireProof, seed);
    }

    /// <summary>
    /// The handshake transcript hash: SHA-256 over a label, the level, the serviceID, both flowIDs, both nonces, both
    /// key shares, and the proof's prefix length and service key (zeros without a proof).
    /// </summary>
    public static byte[] Transcript(
        byte level, ServiceId service, FlowId clientFlow, FlowId serverFlow, Nonce clientNonce, Nonce serverNonce,
        ReadOnlySpan<byte> clientShare, ReadOnlySpan<byte> serverShare, int prefixBits, ReadOnlySpan<byte> serviceKey)
    {
        Span<byte> t = stackalloc byte[TranscriptLabel.Length + 1 + 32 + 4 + 4 + 8 + 8 + 32 + 32 + 1 + 32];
        var o = 0;
        TranscriptLabel.CopyTo(t);
        o += TranscriptLabel.Length;
        t[o++] = level;
        service.WriteTo(t[o..]);
        o += 32;
        BinaryPrimitives.WriteUInt32BigEndian(t[o..], clientFlow.Value);
        o += 4;
        BinaryPrimitives.WriteUInt32BigEndian(t[o..], serverFlow.Value);
        o += 4;
        BinaryPrimitives.WriteUInt64BigEndian(t[o..], clientNonce.Value);
        o += 8;
        BinaryPrimitives.WriteUInt64BigEndian(t[o..], serverNonce.Value);
        o += 8;
        clientShare.CopyTo(t[o..]);
        o += 32;
        serverShare.CopyTo(t[o..]);
        o += 32;
        t[o++] = (byte)prefixBits;
        t[o..].Clear();
        if (serviceKey.Length == 32)
        {
            serviceKey.CopyTo(t[o..]);
        }

        return SHA256.HashData(t);
    }

    /// <summary>The bytes an ownership proof signs: a label and the transcript hash.</summary>
    public static byte[] ProofMessage(ReadOnlySpan<byte> transcript)
    {
        var m = new byte[ProofLabel.Length + transcript.Length];
        ProofLabel.CopyTo(m, 0);
        transcript.CopyTo(m.AsSpan(ProofLabel.Length));
        return m;
    }

    /// <summary>Server: records the acceptance the SYN-ACK carries.</summary>
    public void SetAcceptance(SalKeyExchange acceptance, FlowProtection level)
    {
        Acceptance = acceptance;
        Level = level;
    }

    /// <summary>Client: the server proved ownership (its signature verified).</summary>
    public void MarkOwnershipProved() => OwnershipProved = true;

    /// <summary>
    /// Agrees on the shared secret with <paramref name="peerShare"/> and derives both directions' keys with HKDF-SHA256
    /// (salt: the transcript hash). False when the peer's share is not a valid X25519 key (an all-zero secret).
    /// </summary>
    public bool DeriveKeys(ReadOnlySpan<byte> peerShare, ReadOnlySpan<byte> transcript, bool isClient, FlowProtection level)
    {
        Span<byte> secret = stackalloc byte[X25519.Length];
        if (_ephemeral is null || !X25519.Agree(_ephemeral, peerShare, secret))
        {
            CryptographicOperations.ZeroMemory(secret);
            return false;
        }

        // HKDF-SHA256 (RFC 5869): salt the transcript hash, input the raw X25519 secret.
        Span<byte> okm = stackalloc byte[88];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, secret, okm, transcript, KeyLabel);
        CryptographicOperations.ZeroMemory(secret);
        var c2s = okm[..32];
        var c2sIv = okm.Slice(32, 12);
        var s2c = okm.Slice(44, 32);
        var s2cIv = okm.Slice(76, 12);
        if (NativeAead)
        {
            _sendKey = Key.Import(Aead, isClient ? c2s : s2c, KeyBlobFormat.RawSymmetricKey);
            _receiveKey = Key.Import(Aead, isClient ? s2c : c2s, KeyBlobFormat.RawSymmetricKey);
        }
        else
        {
            _send = new AesGcm(isClient ? c2s : s2c, SalPacketAuth.TagLength);
            _receive = new AesGcm(isClient ? s2c : c2s, SalPacketAuth.TagLength);
        }

        Established = true;
        (isClient ? c2sIv : s2cIv).CopyTo(_sendIv);
        (isClient ? s2cIv : c2sIv).CopyTo(_receiveIv);
        CryptographicOperations.ZeroMemory(okm);
        Level = level;
        return true;
    }

    /// <summary>Client: drops keys derived from a SYN-ACK that did not verify (the ephemeral key stays for the real one).</summary>
    public void ForgetKeys()
    {
        _send?.Dispose();
        _receive?.Dispose();
        _sendKey?.Dispose();
        _receiveKey?.Dispose();
        _send = null;
        _receive = null;
        _sendKey = null;
        _receiveKey = null;
        Established = false;
        _nextPacketNumber = 0;
        _receivedAny = false;
    }

    /// <summary>
    /// Emits <paramref name="repr"/> (without AUTH) with <paramref name="payload"/> into <paramref name="buffer"/>,
    /// sealed: the AUTH extension with the next packet number and the tag over the canonical header and the payload
    /// (encrypted at <see cref="FlowProtection.Encrypted"/>). <paramref name="scratch"/> holds the associated data.
    /// Returns the packet length, or 0 when the buffer is too small.
    /// </summary>
    public int Seal(Span<byte> buffer, in SalPacketRepr repr, ReadOnlySpan<byte> payload, in TransportPseudoHeader pseudoHeader, Span<byte> scratch)
    {
        var pn = _nextPacketNumber++;
        var r = repr with { Auth = new SalPacketAuth(pn) };
        var hl = r.EmitHeaders(buffer, payload.Length);
        if (hl == 0)
        {
            return 0;
        }

        var sal = r.SalHeaderLength;
        var aad = Canonical(r, payload.Length, scratch);
        Span<byte> nonce = stackalloc byte[12];
        MakeNonce(_sendIv, pn, nonce);
        var tag = buffer.Slice(sal - SalPacketAuth.Length + SalPacketAuth.TagOffset, SalPacketAuth.TagLength);
        var body = buffer.Slice(hl, payload.Length);
        if (Level == FlowProtection.Encrypted)
        {
            if (_sendKey is not null)
            {
                // libsodium writes ciphertext || tag: the tag lands just past the packet, then moves into AUTH.
                var sealedBody = buffer.Slice(hl, payload.Length + SalPacketAuth.TagLength);
                Aead.Encrypt(_sendKey, nonce, scratch[..aad], payload, sealedBody);
                sealedBody[payload.Length..].CopyTo(tag);
            }
            else
            {
                _send!.Encrypt(nonce, payload, body, tag, scratch[..aad]);
            }
        }
        else
        {
            payload.CopyTo(body);
            payload.CopyTo(scratch[aad..]);
            if (_sendKey is not null)
            {
                Aead.Encrypt(_sendKey, nonce, scratch[..(aad + payload.Length)], [], tag);
            }
            else
            {
                _send!.Encrypt(nonce, [], [], tag, scratch[..(aad + payload.Length)]);
            }
        }

        buffer[10] = 0;
        buffer[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[10..], InternetChecksum.Compute(buffer[..sal]));
        var total = hl + payload.Length;
        r.FillTransportChecksum(buffer[..total], pseudoHeader);
        return total;
    }

    /// <summary>Why <see cref="Open"/> refused a packet.</summary>
    public enum OpenResult
    {
        /// <summary>Authentic and new.</summary>
        Ok,

        /// <summary>No AUTH extension.</summary>
        Missing,

        /// <summary>The tag does not verify.</summary>
        BadTag,

        /// <summary>A packet number already received, or too old.</summary>
        Replayed,
    }

    /// <summary>
    /// Checks a received packet of this flow. On <see cref="OpenResult.Ok"/> the payload to hand on is in
    /// <paramref name="plaintext"/>'s first payload-length bytes when <paramref name="decrypted"/>
    /// (otherwise the packet's own payload is authentic as it is).
    /// </summary>
    public OpenResult Open(in SalPacketRepr p, ReadOnlySpan<byte> payload, Span<byte> scratch, Span<byte> plaintext, out bool decrypted)
    {
        decrypted = false;
        if (p.Auth is not { } auth)
        {
            return OpenResult.Missing;
        }

        var pn = auth.PacketNumber;
        if (!FreshPacketNumber(pn))
        {
            return OpenResult.Replayed;
        }

        var aad = Canonical(p with { Auth = new SalPacketAuth(pn) }, payload.Length, scratch);
        Span<byte> nonce = stackalloc byte[12];
        MakeNonce(_receiveIv, pn, nonce);
        Span<byte> tag = stackalloc byte[SalPacketAuth.TagLength];
        auth.WriteTag(tag);
        if (_receiveKey is not null)
        {
            bool ok;
            if (Level == FlowProtection.Encrypted)
            {
                var sealedBody = scratch.Slice(aad, payload.Length + SalPacketAuth.TagLength);
                payload.CopyTo(sealedBody);
                tag.CopyTo(sealedBody[payload.Length..]);
                ok = Aead.Decrypt(_receiveKey, nonce, scratch[..aad], sealedBody, plaintext[..payload.Length]);
                decrypted = ok;
            }
            else
            {
                payload.CopyTo(scratch[aad..]);
                ok = Aead.Decrypt(_receiveKey, nonce, scratch[..(aad + payload.Length)], tag, []);
            }

            if (!ok)
            {
                return OpenResult.BadTag;
            }

            RecordPacketNumber(pn);
            return OpenResult.Ok;
        }

        try
        {
            if (Level == FlowProtection.Encrypted)
            {
                _receive!.Decrypt(nonce, payload, tag, plaintext[..payload.Length], scratch[..aad]);
                decrypted = true;
            }
            else
            {
                payload.CopyTo(scratch[aad..]);
                _receive!.Decrypt(nonce, [], tag, [], scratch[..(aad + payload.Length)]);
            }
        }
        catch (AuthenticationTagMismatchException)
        {
            return OpenResult.BadTag;
        }

        RecordPacketNumber(pn);
        return OpenResult.Ok;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ephemeral is not null)
        {
            CryptographicOperations.ZeroMemory(_ephemeral);
            _ephemeral = null;
        }

        ForgetKeys();
    }

    /// <summary>
    /// The associated data of a packet: its SAL header and transport header as <paramref name="r"/> emits them without
    /// the SOURCE route (routers rewrite it) and with the SAL checksum zero (the AUTH tag and the transport checksum are
    /// zero as emitted). Returns its length.
    /// </summary>
    private static int Canonical(in SalPacketRepr r, int payloadLength, Span<byte> scratch)
    {
        var c = r.SourceRoute is null ? r : r with { SourceRoute = null };
        var hl = c.EmitHeaders(scratch, payloadLength);
        scratch[10] = 0;
        scratch[11] = 0;
        return hl;
    }

    private static void MakeNonce(ReadOnlySpan<byte> iv, ulong pn, Span<byte> nonce)
    {
        iv.CopyTo(nonce);
        var low = BinaryPrimitives.ReadUInt64BigEndian(nonce[4..]) ^ pn;
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], low);
    }

    private bool FreshPacketNumber(ulong pn)
    {
        if (!_receivedAny || pn > _highest)
        {
            return true;
        }

        var behind = _highest - pn;
        if (behind >= ReplayWindow)
        {
            return false;
        }

        var bit = (int)((_highest - behind) % ReplayWindow);
        return (_window[bit / 64] & (1UL << (bit % 64))) == 0;
    }

    private void RecordPacketNumber(ulong pn)
    {
        if (!_receivedAny)
        {
            _receivedAny = true;
            _highest = pn;
            Array.Clear(_window);
        }
        else if (pn > _highest)
        {
            var advance = pn - _highest;
            if (advance >= ReplayWindow)
            {
                Array.Clear(_window);
            }
            else
            {
                for (var k = _highest + 1; k < pn; k++)
                {
                    var b = (int)(k % ReplayWindow);
                    _window[b / 64] &= ~(1UL << (b % 64));
                }
            }

            _highest = pn;
        }

        var bit = (int)(pn % ReplayWindow);
        _window[bit / 64] |= 1UL << (bit % 64);
    }
}
