using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// <c>--service-table-summary [artifacts]</c>: measures what BenchmarkDotNet is awkward for (update rate, memory
/// per prefix, allocation per lookup with a plain counter), reads the lookup rates from the BenchmarkDotNet JSON
/// reports under <c>artifacts</c>, and prints the one-line summary <c>bench/run.sh service-table</c> ends with.
/// </summary>
internal static class ServiceTableSummary
{
    public static int Run(string[] args)
    {
        var artifacts = args.Length > 0 ? args[0] : "BenchmarkDotNet.Artifacts";
        var inv = CultureInfo.InvariantCulture;

        // Memory: everything the table holds (trie nodes, entries, rules, counters) per prefix. The table lives in
        // a box and is touched only from non-inlined helpers, so that dropping it really drops it (the JIT may keep
        // a method's temporaries alive to its end).
        var prefixes = ServiceTableWorkload.Prefixes(1_000_000, 1);
        var box = new StrongBox<ServiceTable?>();
        var before = SettledMemory();
        var stopwatch = Stopwatch.StartNew();
        Build(box, prefixes);
        var buildSeconds = stopwatch.Elapsed.TotalSeconds;
        var withTable = SettledMemory();
        var bytesPerPrefix = (double)(withTable - before) / prefixes.Length;
        var nodes = CountNodes(box);

        // The trie's own share: keep only the entries (with their rules and counters), drop the table, measure again.
        var entries = SnapshotEntries(box);
        var withEntriesArray = SettledMemory();
        box.Value = null;
        var entriesOnly = SettledMemory();
        var trieBytesPerPrefix = (double)(withEntriesArray - entriesOnly) / prefixes.Length;
        GC.KeepAlive(entries);
        entries = null;

        // Sustained updates on a 1M table: each round adds a new prefix, removes one added 20,000 rounds earlier
        // and modifies an existing rule, so the table (and the heap) stays the same size.
        var table = ServiceTableWorkload.BuildTable(prefixes);
        var fresh = ServiceTableWorkload.Prefixes(220_000, 9).Where(p => !table.TryGetExact(p, out _)).ToArray();
        var target = ServiceTarget.Forward(ServiceTableWorkload.NextHop(7), 1);
        const int Window = 20_000;
        for (var i = 0; i < Window; i++)
        {
            Check(table.Add(fresh[i], target));
        }

        var rounds = Math.Min(100_000, fresh.Length - Window);
        SettledMemory();
        stopwatch.Restart();
        for (var i = 0; i < rounds; i++)
        {
            Check(table.Add(fresh[Window + i], target));
            Check(table.Remove(fresh[i], target));
            Check(table.Modify(prefixes[i], ServiceTarget.Forward(ServiceTableWorkload.NextHop(i), 1 + (i & 3)), weight: (uint)(2 + (i & 7))));
        }

        var updateSeconds = stopwatch.Elapsed.TotalSeconds;
        var updates = 3 * rounds;
        var updatesPerSecond = updates / updateSeconds;

        // Allocation per lookup with the runtime's own counter (BenchmarkDotNet's figure is preferred below).
        var keys = ServiceTableWorkload.RandomKeys(1 << 20, 2);
        var found = 0;
        foreach (var key in keys)
        {
            found += table.Lookup(key) is null ? 0 : 1; // warm up (JIT tiering)
        }

        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        stopwatch.Restart();
        foreach (var key in keys)
        {
            found += table.Lookup(key) is null ? 0 : 1;
        }

        var plainLookupSeconds = stopwatch.Elapsed.TotalSeconds;
        var allocPerLookup = (double)(GC.GetAllocatedBytesForCurrentThread() - allocatedBefore) / keys.Length;
        var keyCount = keys.Length;
        keys = null;
        GC.KeepAlive(table);
        table = null;

        // The baseline's memory at 100k prefixes.
        var small = ServiceTableWorkload.Prefixes(100_000, 1);
        var smallTable = ServiceTableWorkload.BuildTable(small);
        var beforeReference = SettledMemory();
        var reference = new ServiceTableReferenceTrie();
        foreach (var entry in smallTable.Entries)
        {
            reference.Insert(entry.Prefix, entry);
        }

        var referenceBytesPerPrefix = (double)(SettledMemory() - beforeReference) / small.Length;
        var referenceNodes = reference.NodeCount;
        GC.KeepAlive(reference);
        var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";

        Console.WriteLine($"service-table summary ({Environment.ProcessorCount} cores, .NET {Environment.Version}, load average {load}):");
        Console.WriteLine(string.Create(inv, $"  1M prefixes: built from empty in {buildSeconds:F2} s ({prefixes.Length / buildSeconds:F0} adds/s, the heap growing), {nodes} trie nodes"));
        Console.WriteLine(string.Create(inv, $"  memory: {bytesPerPrefix:F0} bytes/prefix in all, of which trie {trieBytesPerPrefix:F0} (entries, rules and counters the rest)"));
        Console.WriteLine(string.Create(inv, $"  baseline one-bit trie at 100k: {referenceNodes} nodes, {referenceBytesPerPrefix:F0} bytes/prefix for the trie alone"));
        Console.WriteLine(string.Create(inv, $"  sustained updates on the 1M table: {updates} (add + remove + modify rounds) in {updateSeconds:F2} s = {updatesPerSecond:F0}/s"));
        Console.WriteLine(string.Create(inv, $"  plain loop, 1M random keys on 1M prefixes: {keyCount / plainLookupSeconds:F0} lookups/s, {allocPerLookup:F3} bytes allocated per lookup ({found} hits)"));

        var results = ReadBenchmarkResults(Path.Combine(artifacts, "results"));
        double Rate(string type, string method, int size)
        {
            if (!results.TryGetValue((type, method, size), out var r))
            {
                Console.Error.WriteLine($"no BenchmarkDotNet result for {type}.{method} Size={size} under {artifacts}");
                return 0;
            }

            return 1e9 / r.MeanNs;
        }

        var rate100k = Rate(nameof(ServiceTableLookupBenchmarks), nameof(ServiceTableLookupBenchmarks.LookupRandom), 100_000);
        var rate1m = Rate(nameof(ServiceTableLookupBenchmarks), nameof(ServiceTableLookupBenchmarks.LookupRandom), 1_000_000);
        var baseline = Rate(nameof(ServiceTableBaselineBenchmarks), nameof(ServiceTableBaselineBenchmarks.BaselineLookupRandom), 100_000);
        var hit100k = Rate(nameof(ServiceTableLookupBenchmarks), nameof(ServiceTableLookupBenchmarks.LookupHit), 100_000);
        var hit1m = Rate(nameof(ServiceTableLookupBenchmarks), nameof(ServiceTableLookupBenchmarks.LookupHit), 1_000_000);
        var baselineHit = Rate(nameof(ServiceTableBaselineBenchmarks), nameof(ServiceTableBaselineBenchmarks.BaselineLookupHit), 100_000);
        var sameRun = Rate(nameof(ServiceTableBaselineBenchmarks), nameof(ServiceTableBaselineBenchmarks.LookupRandom), 100_000);
        var sameRunHit = Rate(nameof(ServiceTableBaselineBenchmarks), nameof(ServiceTableBaselineBenchmarks.LookupHit), 100_000);
        var bdnAlloc = results.Values.Where(r => r.Type == nameof(ServiceTableLookupBenchmarks)).Select(r => r.AllocatedPerOp).DefaultIfEmpty(allocPerLookup).Max();

        Console.WriteLine(string.Create(inv, $"  BenchmarkDotNet, random keys: {rate100k:F0}/s at 100k, {rate1m:F0}/s at 1M; baseline {baseline:F0}/s at 100k (ratio {Ratio(sameRun, baseline)} in the same class)"));
        Console.WriteLine(string.Create(inv, $"  BenchmarkDotNet, hit keys: {hit100k:F0}/s at 100k, {hit1m:F0}/s at 1M; baseline {baselineHit:F0}/s at 100k (ratio {Ratio(sameRunHit, baselineHit)} in the same class)"));
        Console.WriteLine(string.Create(
            inv,
            $"service-table: lookups_per_s_100k={rate100k:F0} lookups_per_s_1m={rate1m:F0} baseline_lookups_per_s_100k={baseline:F0} updates_per_s={updatesPerSecond:F0} bytes_per_prefix={bytesPerPrefix:F0} alloc_per_lookup={Math.Round(bdnAlloc):F0}"));
        return rate100k > 0 && rate1m > 0 && baseline > 0 ? 0 : 1;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Build(StrongBox<ServiceTable?> box, ServicePrefix[] prefixes) => box.Value = ServiceTableWorkload.BuildTable(prefixes);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ServiceEntry[] SnapshotEntries(StrongBox<ServiceTable?> box) => box.Value!.Entries.ToArray();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int CountNodes(StrongBox<ServiceTable?> box) => box.Value!.CountTrieNodes();

    private static string Ratio(double a, double b) => b > 0 ? (a / b).ToString("F1", CultureInfo.InvariantCulture) + "x" : "n/a";

    private static void Check(ServiceTableResult result)
    {
        if (result != ServiceTableResult.Ok)
        {
            throw new InvalidOperationException($"update failed: {result}");
        }
    }

    private static long SettledMemory()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static Dictionary<(string Type, string Method, int Size), Result> ReadBenchmarkResults(string directory)
    {
        var results = new Dictionary<(string, string, int), Result>();
        if (!Directory.Exists(directory))
        {
            return results;
        }

        foreach (var file in Directory.GetFiles(directory, "*ServiceTable*-report*.json"))
        {
            using var document = JsonDocument.Parse(File.ReadAllText(file));
            foreach (var benchmark in document.RootElement.GetProperty("Benchmarks").EnumerateArray())
            {
                var type = benchmark.GetProperty("Type").GetString() ?? "";
                var method = benchmark.GetProperty("Method").GetString() ?? "";
                var parameters = benchmark.GetProperty("Parameters").GetString() ?? "";
                var size = int.Parse(parameters.Split('=')[^1], CultureInfo.InvariantCulture);
                if (!benchmark.TryGetProperty("Statistics", out var statistics) || statistics.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }

                var mean = statistics.GetProperty("Mean").GetDouble();
                var allocated = benchmark.TryGetProperty("Memory", out var memory) ? memory.GetProperty("BytesAllocatedPerOperation").GetDouble() : 0;
                results[(type, method, size)] = new Result(type, mean, allocated);
            }
        }

        return results;
    }

    private sealed record Result(string Type, double MeanNs, double AllocatedPerOp);
}
