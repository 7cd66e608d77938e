using System.Security.Cryptography;
using Serval.Stack;

namespace Serval.Runtime;

/// <summary>
/// The engine's random source on real networks: the operating system's cryptographic generator (thread-safe). The
/// sans-I/O engine takes an <see cref="IRandomSource"/> and may not touch the generator itself (src/BannedSymbols.txt).
/// </summary>
internal sealed class CryptoRandomSource : IRandomSource
{
    /// <summary>A shared instance.</summary>
    public static CryptoRandomSource Instance { get; } = new();

    /// <inheritdoc/>
    public ulong NextUInt64()
    {
        Span<byte> b = stackalloc byte[8];
        RandomNumberGenerator.Fill(b);
        return BitConverter.ToUInt64(b);
    }
}
