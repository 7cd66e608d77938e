using BenchmarkDotNet.Attributes;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>Service-table longest-prefix match against 100,000 and 1,000,000 prefixes of mixed length.</summary>
[Config(typeof(ServiceTableBenchmarkConfig))]
[MemoryDiagnoser]
public class ServiceTableLookupBenchmarks
{
    public const int Batch = 1 << 14;

    private readonly ServiceEntry?[] _results = new ServiceEntry?[64];
    private ServiceTable _table = null!;
    private ServiceId[] _randomKeys = null!;
    private ServiceId[] _hitKeys = null!;
    private int _offset;

    [Params(100_000, 1_000_000)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        ServiceTableFixtures.ReleaseReferences();
        var fixture = ServiceTableFixtures.Get(Size);
        _table = fixture.Table;
        _randomKeys = ServiceTableFixtures.RandomKeys;
        _hitKeys = fixture.HitKeys;
    }

    /// <summary>Uniformly random 256-bit keys (most resolve to a short prefix or nothing).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int LookupRandom() => Run(_randomKeys);

    /// <summary>Keys under stored prefixes (each resolves to its prefix or a longer one).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int LookupHit() => Run(_hitKeys);

    /// <summary>Uniformly random keys, 64 per <see cref="ServiceTable.LookupBatch"/> call (a receive batch).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int LookupBatchRandom() => RunBatched(_randomKeys);

    /// <summary>Keys under stored prefixes, 64 per <see cref="ServiceTable.LookupBatch"/> call.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int LookupBatchHit() => RunBatched(_hitKeys);

    private int RunBatched(ServiceId[] keys)
    {
        var table = _table;
        var results = _results;
        var start = _offset;
        _offset = (start + Batch) & (keys.Length - 1);
        var found = 0;
        for (var i = start; i < start + Batch; i += results.Length)
        {
            table.LookupBatch(keys.AsSpan(i, results.Length), results);
            foreach (var entry in results)
            {
                if (entry is not null)
                {
                    found++;
                }
            }
        }

        return found;
    }

    private int Run(ServiceId[] keys)
    {
        var table = _table;
        var start = _offset;
        _offset = (start + Batch) & (keys.Length - 1);
        var found = 0;
        for (var i = start; i < start + Batch; i++)
        {
            if (table.Lookup(keys[i]) is not null)
            {
                found++;
            }
        }

        return found;
    }
}
