using System.Globalization;
using System.Text;
using NSec.Cryptography;
using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// The key pair of a self-certifying serviceID (docs/security.md): an Ed25519 key and the prefix its serviceID was made
/// under; <see cref="ServiceId"/> is <see cref="ServiceId.FromPublicKey"/> of both. A listener with a key proves
/// ownership in its SYN-ACKs, and a host signs registrations of the serviceID with it. Files hold it as text
/// (<see cref="ToText"/>, <see cref="TryParse"/>); reading and writing them is the runtime's job.
/// </summary>
public sealed class ServiceKey : IDisposable
{
    /// <summary>The first line of a key file.</summary>
    public const string Header = "# Serval service key (Ed25519). Keep this file private: mode 0600.";

    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;
    private readonly Key _key;
    private readonly byte[] _publicKey;

    private ServiceKey(Key key, ServicePrefix prefix)
    {
        _key = key;
        _publicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        Prefix = prefix;
        ServiceId = ServiceId.FromPublicKey(prefix, _publicKey);
    }

    /// <summary>The prefix the serviceID was made under (at most 128 bits).</summary>
    public ServicePrefix Prefix { get; }

    /// <summary>The self-certifying serviceID: the prefix, then the hash of prefix and public key.</summary>
    public ServiceId ServiceId { get; }

    /// <summary>The 32-byte Ed25519 public key.</summary>
    public ReadOnlySpan<byte> PublicKey => _publicKey;

    /// <summary>A new key under <paramref name="prefix"/> (at most 128 bits) from 32 bytes of <paramref name="random"/>.</summary>
    public static ServiceKey Create(ServicePrefix prefix, IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(random);
        Span<byte> seed = stackalloc byte[32];
        for (var i = 0; i < 32; i += 8)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(seed[i..], random.NextUInt64());
        }

        return FromSeed(prefix, seed);
    }

    /// <summary>The key whose 32-byte Ed25519 private seed is <paramref name="seed"/>, under <paramref name="prefix"/>.</summary>
    public static ServiceKey FromSeed(ServicePrefix prefix, ReadOnlySpan<byte> seed)
    {
        CheckPrefix(prefix);
        var key = Key.Import(Algorithm, seed, KeyBlobFormat.RawPrivateKey, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return new ServiceKey(key, prefix);
    }

    /// <summary>The key file's text: a comment, <c>serviceid:</c> and <c>prefix:</c> lines, and the PKCS#8 private key in PEM.</summary>
    public string ToText()
    {
        var pem = Encoding.ASCII.GetString(_key.Export(KeyBlobFormat.PkixPrivateKeyText)).TrimEnd();
        return string.Create(CultureInfo.InvariantCulture, $"{Header}\nserviceid: {ServiceId:x}\nprefix: {Prefix.Id:x}/{Prefix.Length}\n{pem}\n");
    }

    /// <summary>
    /// Reads a key file's text. Fails, with <paramref name="error"/> saying why, when a line is missing or malformed, the
    /// PEM is not an Ed25519 private key, or the serviceID written in the file is not the one the key and prefix make.
    /// </summary>
    public static bool TryParse(string text, out ServiceKey? key, out string? error)
    {
        key = null;
        ArgumentNullException.ThrowIfNull(text);
        ServiceId? id = null;
        ServicePrefix? prefix = null;
        var pem = new StringBuilder();
        var inPem = false;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith("-----BEGIN", StringComparison.Ordinal))
            {
                inPem = true;
            }

            if (inPem)
            {
                pem.Append(line).Append('\n');
                if (line.StartsWith("-----END", StringComparison.Ordinal))
                {
                    inPem = false;
                }

                continue;
            }

            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            if (line.StartsWith("serviceid:", StringComparison.Ordinal))
            {
                if (!ServiceId.TryParse(line["serviceid:".Length..].Trim(), out var parsed, out var why))
                {
                    error = $"malformed serviceid line: {why}";
                    return false;
                }

                id = parsed;
            }
            else if (line.StartsWith("prefix:", StringComparison.Ordinal))
            {
                if (!ServicePrefix.TryParse(line["prefix:".Length..].Trim(), out var parsed, out var why))
                {
                    error = $"malformed prefix line: {why}";
                    return false;
                }

                prefix = parsed;
            }
            else
            {
                error = $"unexpected line '{(line.Length > 40 ? line[..40] + "…" : line)}' (expected serviceid:, prefix: or a PEM private key)";
                return false;
            }
        }

        if (id is null || prefix is null)
        {
            error = id is null ? "no 'serviceid:' line" : "no 'prefix:' line";
            return false;
        }

        if (prefix.Value.Length > ServiceId.MaxSelfCertifyingPrefixLength)
        {
            error = $"the prefix has {prefix.Value.Length} bits; a self-certifying serviceID's prefix has at most {ServiceId.MaxSelfCertifyingPrefixLength}";
            return false;
        }

        if (pem.Length == 0)
        {
            error = "no PEM private key (-----BEGIN PRIVATE KEY-----)";
            return false;
        }

        Key k;
        try
        {
            k = Key.Import(Algorithm, Encoding.ASCII.GetBytes(pem.ToString()), KeyBlobFormat.PkixPrivateKeyText, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        }
        catch (FormatException e)
        {
            error = $"the PEM is not an Ed25519 private key ({e.Message})";
            return false;
        }

        var candidate = new ServiceKey(k, prefix.Value);
        if (candidate.ServiceId != id.Value)
        {
            candidate.Dispose();
            error = $"the serviceID in the file ({id.Value:x}) is not the one its key and prefix make ({candidate.ServiceId:x})";
            return false;
        }

        key = candidate;
        error = null;
        return true;
    }

    /// <summary>Signs <paramref name="data"/> (64-byte Ed25519 signature into <paramref name="signature"/>).</summary>
    public void Sign(ReadOnlySpan<byte> data, Span<byte> signature) => Algorithm.Sign(_key, data, signature);

    /// <summary>Whether <paramref name="signature"/> is a valid Ed25519 signature of <paramref name="data"/> by <paramref name="publicKey"/> (32 bytes).</summary>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != 32 || signature.Length != 64)
        {
            return false;
        }

        if (!NSec.Cryptography.PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out var pk) || pk is null)
        {
            return false;
        }

        return Algorithm.Verify(pk, data, signature);
    }

    /// <inheritdoc />
    public void Dispose() => _key.Dispose();

    private static void CheckPrefix(ServicePrefix prefix)
    {
        if (prefix.Length > ServiceId.MaxSelfCertifyingPrefixLength)
        {
            throw new ArgumentException($"A self-certifying serviceID's prefix has at most {ServiceId.MaxSelfCertifyingPrefixLength} bits (was {prefix.Length}).", nameof(prefix));
        }
    }
}
