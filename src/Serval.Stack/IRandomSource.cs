namespace Serval.Stack;

/// <summary>
/// The engine's only source of randomness (flowIDs, nonces, initial sequence numbers, weighted choices).
/// Passing it in keeps every run with the same seed identical.
/// </summary>
public interface IRandomSource
{
    /// <summary>Returns 64 uniformly random bits.</summary>
    ulong NextUInt64();
}

/// <summary>Convenience operations over <see cref="IRandomSource"/>.</summary>
public static class RandomSourceExtensions
{
    /// <summary>Returns 32 uniformly random bits.</summary>
    public static uint NextUInt32(this IRandomSource random) => (uint)(random.NextUInt64() >> 32);

    /// <summary>Returns a uniformly random value in [0, 1).</summary>
    public static double NextDouble(this IRandomSource random) => (random.NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Returns a uniformly random value in [0, <paramref name="bound"/>) without modulo bias.</summary>
    public static ulong NextBelow(this IRandomSource random, ulong bound)
    {
        ArgumentOutOfRangeException.ThrowIfZero(bound);
        // Lemire's multiply-shift with rejection.
        while (true)
        {
            var x = random.NextUInt64();
            var m = Math.BigMul(x, bound, out var low);
            if (low >= bound || low >= (0 - bound) % bound)
            {
                return m;
            }
        }
    }
}

/// <summary>
/// A fast seeded pseudo-random source (xoshiro256**), for simulations and tests. Not cryptographic: hosts facing
/// real networks use the cryptographic source the runtime (src/Serval) passes in.
/// </summary>
public sealed class SeededRandomSource : IRandomSource
{
    private ulong _s0, _s1, _s2, _s3;

    /// <summary>Creates a source whose sequence is fully determined by <paramref name="seed"/>.</summary>
    public SeededRandomSource(ulong seed)
    {
        // SplitMix64 expands the seed into the 256-bit state.
        _s0 = SplitMix(ref seed);
        _s1 = SplitMix(ref seed);
        _s2 = SplitMix(ref seed);
        _s3 = SplitMix(ref seed);
    }

    private static ulong SplitMix(ref ulong x)
    {
        var z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <inheritdoc/>
    public ulong NextUInt64()
    {
        var result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }
}
