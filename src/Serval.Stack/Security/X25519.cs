using System.Runtime.InteropServices;

namespace Serval.Stack;

/// <summary>
/// X25519 (RFC 7748) on plain buffers, through libsodium (the library NSec.Cryptography binds, shipped with it). The
/// handshake's ephemeral keys live for one handshake; NSec's <c>Key</c> and <c>SharedSecret</c> objects would put each
/// in guarded memory of its own (an mmap, two mprotect calls and an munmap apiece), which cost several times the
/// arithmetic (docs/security.md, "Cost of a connect"). The secrets here are zeroed by their owner after use.
/// </summary>
internal static partial class X25519
{
    /// <summary>Length of keys, shares and the shared secret.</summary>
    public const int Length = 32;

    private const string Library = "libsodium";

    static X25519()
    {
        if (SodiumInit() < 0)
        {
            throw new InvalidOperationException("libsodium could not be initialised.");
        }
    }

    /// <summary>The public key (share) of <paramref name="secret"/>: the scalar times the base point.</summary>
    public static void PublicKey(ReadOnlySpan<byte> secret, Span<byte> share)
    {
        Check(secret);
        Check(share);
        if (ScalarMultBase(ref MemoryMarshal.GetReference(share), in MemoryMarshal.GetReference(secret)) != 0)
        {
            throw new InvalidOperationException("X25519: the base-point multiplication failed.");
        }
    }

    /// <summary>The shared secret of our <paramref name="secret"/> and the peer's <paramref name="peerShare"/>; false when the peer's share is not 32 bytes or gives the all-zero secret (a low-order point).</summary>
    public static bool Agree(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> peerShare, Span<byte> shared)
    {
        Check(secret);
        Check(shared);
        return peerShare.Length == Length
            && ScalarMult(ref MemoryMarshal.GetReference(shared), in MemoryMarshal.GetReference(secret), in MemoryMarshal.GetReference(peerShare)) == 0;
    }

    private static void Check(ReadOnlySpan<byte> buffer)
    {
        if (buffer.Length != Length)
        {
            throw new ArgumentException($"X25519 keys are {Length} bytes (was {buffer.Length}).", nameof(buffer));
        }
    }

    [LibraryImport(Library, EntryPoint = "sodium_init")]
    private static partial int SodiumInit();

    [LibraryImport(Library, EntryPoint = "crypto_scalarmult_curve25519_base")]
    private static partial int ScalarMultBase(ref byte q, in byte n);

    [LibraryImport(Library, EntryPoint = "crypto_scalarmult_curve25519")]
    private static partial int ScalarMult(ref byte q, in byte n, in byte p);
}
