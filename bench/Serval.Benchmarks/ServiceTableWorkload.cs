using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// Seeded workloads for the service-table benchmarks: random serviceIDs with a mix of prefix lengths from /8 to
/// /256 skewed the way deployments would use them (service groups at /32–/128, whole serviceIDs at /256), random
/// 256-bit keys, and "hit" keys drawn under stored prefixes.
/// </summary>
internal static class ServiceTableWorkload
{
    /// <summary>Number of keys each benchmark cycles through (32 MB of keys, far more than any cache).</summary>
    public const int KeyCount = 1 << 20;

    private static readonly int[] _commonLengths = [32, 48, 64, 96, 128];

    /// <summary>
    /// <paramref name="count"/> distinct prefixes: 5% /8–/31, 60% /32–/128 (half of them at /32, /48, /64, /96 or
    /// /128), 10% /129–/255 and 25% /256, on uniformly random serviceIDs.
    /// </summary>
    public static ServicePrefix[] Prefixes(int count, ulong seed)
    {
        var random = new SeededRandomSource(seed);
        var set = new HashSet<ServicePrefix>(count);
        var list = new List<ServicePrefix>(count);
        while (list.Count < count)
        {
            var prefix = new ServicePrefix(RandomId(random), Length(random));
            if (set.Add(prefix))
            {
                list.Add(prefix);
            }
        }

        return [.. list];
    }

    /// <summary>Uniformly random 256-bit keys.</summary>
    public static ServiceId[] RandomKeys(int count, ulong seed)
    {
        var random = new SeededRandomSource(seed);
        var keys = new ServiceId[count];
        for (var i = 0; i < count; i++)
        {
            keys[i] = RandomId(random);
        }

        return keys;
    }

    /// <summary>Keys under randomly chosen stored prefixes (random bits after the prefix).</summary>
    public static ServiceId[] HitKeys(ServicePrefix[] prefixes, int count, ulong seed)
    {
        var random = new SeededRandomSource(seed);
        var keys = new ServiceId[count];
        for (var i = 0; i < count; i++)
        {
            keys[i] = prefixes[(int)random.NextBelow((ulong)prefixes.Length)].Apply(RandomId(random));
        }

        return keys;
    }

    /// <summary>A table with one FORWARD rule per prefix, as on a service router.</summary>
    public static ServiceTable BuildTable(ServicePrefix[] prefixes)
    {
        var table = new ServiceTable();
        for (var i = 0; i < prefixes.Length; i++)
        {
            var result = table.Add(prefixes[i], ServiceTarget.Forward(NextHop(i), 1 + (i & 3)));
            if (result != ServiceTableResult.Ok)
            {
                throw new InvalidOperationException($"add {prefixes[i]}: {result}");
            }
        }

        return table;
    }

    /// <summary>The next hop used for rule <paramref name="i"/>.</summary>
    public static LinkAddress NextHop(int i) => LinkAddress.FromIPv4(0x0A000000u | (uint)(i & 0xFFFFFF), 54325);

    public static ServiceId RandomId(IRandomSource random) =>
        new(random.NextUInt64(), random.NextUInt64(), random.NextUInt64(), random.NextUInt64());

    private static int Length(IRandomSource random)
    {
        var u = random.NextBelow(100);
        if (u < 5)
        {
            return 8 + (int)random.NextBelow(24);
        }

        if (u < 65)
        {
            return random.NextBelow(2) == 0 ? _commonLengths[random.NextBelow((ulong)_commonLengths.Length)] : 32 + (int)random.NextBelow(97);
        }

        return u < 75 ? 129 + (int)random.NextBelow(127) : 256;
    }
}
