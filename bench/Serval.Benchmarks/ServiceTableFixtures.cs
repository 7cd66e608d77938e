using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// Tables and keys shared by every service-table benchmark case of one (in-process) run, so a 1M-prefix table is
/// built once, not once per case.
/// </summary>
internal static class ServiceTableFixtures
{
    private static readonly Dictionary<int, Fixture> _fixtures = [];
    private static readonly Dictionary<int, ServiceTableReferenceTrie> _references = [];
    private static ServiceId[]? _randomKeys;

    /// <summary>Uniformly random keys (seed 2).</summary>
    public static ServiceId[] RandomKeys => _randomKeys ??= ServiceTableWorkload.RandomKeys(ServiceTableWorkload.KeyCount, 2);

    /// <summary>A table of <paramref name="size"/> prefixes (seed 1) and keys under those prefixes (seed 3).</summary>
    public static Fixture Get(int size)
    {
        if (!_fixtures.TryGetValue(size, out var fixture))
        {
            var prefixes = ServiceTableWorkload.Prefixes(size, 1);
            fixture = new Fixture(prefixes, ServiceTableWorkload.BuildTable(prefixes), ServiceTableWorkload.HitKeys(prefixes, ServiceTableWorkload.KeyCount, 3));
            _fixtures[size] = fixture;
        }

        return fixture;
    }

    /// <summary>The reference's one-bit trie holding the same entries as <see cref="Get"/>'s table.</summary>
    public static ServiceTableReferenceTrie Reference(int size)
    {
        if (!_references.TryGetValue(size, out var reference))
        {
            reference = new ServiceTableReferenceTrie();
            foreach (var entry in Get(size).Table.Entries)
            {
                reference.Insert(entry.Prefix, entry);
            }

            _references[size] = reference;
        }

        return reference;
    }

    /// <summary>Drops the baseline tries (about 600 MB at 100k prefixes) so later cases run on a smaller heap.</summary>
    public static void ReleaseReferences() => _references.Clear();

    /// <summary>One table with its keys.</summary>
    internal sealed record Fixture(ServicePrefix[] Prefixes, ServiceTable Table, ServiceId[] HitKeys);
}
