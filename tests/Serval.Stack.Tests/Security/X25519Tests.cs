using System.Security.Cryptography;
using NSec.Cryptography;
using Xunit;

namespace Serval.Stack.Tests.Security;

/// <summary>The handshake's X25519 and HKDF on plain buffers give exactly NSec's bytes (the wire does not change).</summary>
public sealed class X25519Tests
{
    [Fact]
    public void Shares_secrets_and_flow_keys_match_NSec()
    {
        var rng = new Random(7);
        for (var round = 0; round < 20; round++)
        {
            var a = new byte[32];
            var b = new byte[32];
            var salt = new byte[32];
            rng.NextBytes(a);
            rng.NextBytes(b);
            rng.NextBytes(salt);
            var shareA = new byte[32];
            var shareB = new byte[32];
            X25519.PublicKey(a, shareA);
            X25519.PublicKey(b, shareB);

            using var keyA = Key.Import(KeyAgreementAlgorithm.X25519, a, KeyBlobFormat.RawPrivateKey);
            Assert.Equal(keyA.PublicKey.Export(KeyBlobFormat.RawPublicKey), shareA);

            var secretA = new byte[32];
            var secretB = new byte[32];
            Assert.True(X25519.Agree(a, shareB, secretA));
            Assert.True(X25519.Agree(b, shareA, secretB));
            Assert.Equal(secretA, secretB);

            var peer = PublicKey.Import(KeyAgreementAlgorithm.X25519, shareB, KeyBlobFormat.RawPublicKey);
            using var nsecSecret = KeyAgreementAlgorithm.X25519.Agree(keyA, peer)!;
            var info = "serval flow keys v1"u8.ToArray();
            var expected = KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(nsecSecret, salt, info, 88);
            var okm = new byte[88];
            HKDF.DeriveKey(HashAlgorithmName.SHA256, secretA, okm, salt, info);
            Assert.Equal(expected, okm);
        }
    }

    [Fact]
    public void A_low_order_share_is_refused()
    {
        var secret = new byte[32];
        secret[0] = 9;
        Assert.False(X25519.Agree(secret, new byte[32], new byte[32])); // the all-zero point gives the all-zero secret
        Assert.False(X25519.Agree(secret, new byte[31], new byte[32]));
    }
}
