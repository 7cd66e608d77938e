using Serval.Wire;

namespace Serval.Stack.Tests.Services;

/// <summary>
/// Seeded clustered serviceIDs and prefixes: ids are a few random bases with the bits after a split point
/// replaced by random ones, and prefix lengths cluster around the same split points, so that prefixes nest and
/// share long paths (the cases a trie gets wrong), while still covering every length 0–256.
/// </summary>
internal sealed class ServiceIdGenerator
{
    private static readonly int[] _splits = [0, 1, 3, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 40, 63, 64, 65, 100, 127, 128, 129, 191, 192, 200, 247, 248, 249, 255, 256];

    private readonly Random _random;
    private readonly ServiceId[] _bases;

    public ServiceIdGenerator(int seed, int bases = 4)
    {
        _random = new Random(seed);
        _bases = new ServiceId[bases];
        for (var i = 0; i < bases; i++)
        {
            _bases[i] = RandomId();
        }
    }

    public Random Random => _random;

    public ServiceId RandomId()
    {
        var bytes = new byte[ServiceId.Size];
        _random.NextBytes(bytes);
        return new ServiceId(bytes);
    }

    /// <summary>A clustered id: a base's first bits, then random bits.</summary>
    public ServiceId Id()
    {
        var split = _random.Next(4) == 0 ? _random.Next(257) : _splits[_random.Next(_splits.Length)];
        return new ServicePrefix(_bases[_random.Next(_bases.Length)], split).Apply(RandomId());
    }

    /// <summary>A clustered prefix whose length is near a split point most of the time.</summary>
    public ServicePrefix Prefix()
    {
        var length = _random.Next(3) == 0
            ? _random.Next(257)
            : Math.Clamp(_splits[_random.Next(_splits.Length)] + _random.Next(-2, 3), 0, 256);
        return new ServicePrefix(Id(), length);
    }
}
