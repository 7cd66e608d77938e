using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// The service table against the reference's one-bit-per-node trie (<see cref="ServiceTableReferenceTrie"/>), same
/// 100,000 prefixes and same keys, measured in the same run.
/// </summary>
[Config(typeof(ServiceTableBenchmarkConfig))]
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class ServiceTableBaselineBenchmarks
{
    public const int Batch = 1 << 14;

    private ServiceTable _table = null!;
    private ServiceTableReferenceTrie _reference = null!;
    private ServiceId[] _randomKeys = null!;
    private ServiceId[] _hitKeys = null!;
    private int _offset;

    [Params(100_000)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var fixture = ServiceTableFixtures.Get(Size);
        _table = fixture.Table;
        _reference = ServiceTableFixtures.Reference(Size);
        _randomKeys = ServiceTableFixtures.RandomKeys;
        _hitKeys = fixture.HitKeys;

        // Both structures must give the same answers, or the comparison means nothing.
        for (var i = 0; i < 100_000; i++)
        {
            var key = i % 2 == 0 ? _randomKeys[i] : _hitKeys[i];
            if (!ReferenceEquals(_table.Lookup(key), _reference.Lookup(key)))
            {
                throw new InvalidOperationException($"baseline and service table disagree on {key}");
            }
        }
    }

    [BenchmarkCategory("Random")]
    [Benchmark(Baseline = true, OperationsPerInvoke = Batch)]
    public int BaselineLookupRandom()
    {
        var keys = _randomKeys;
        var start = Advance();
        var found = 0;
        for (var i = start; i < start + Batch; i++)
        {
            if (_reference.Lookup(keys[i]) is not null)
            {
                found++;
            }
        }

        return found;
    }

    [BenchmarkCategory("Random")]
    [Benchmark(OperationsPerInvoke = Batch)]
    public int LookupRandom()
    {
        var keys = _randomKeys;
        var start = Advance();
        var found = 0;
        for (var i = start; i < start + Batch; i++)
        {
            if (_table.Lookup(keys[i]) is not null)
            {
                found++;
            }
        }

        return found;
    }

    [BenchmarkCategory("Hit")]
    [Benchmark(Baseline = true, OperationsPerInvoke = Batch)]
    public int BaselineLookupHit()
    {
        var keys = _hitKeys;
        var start = Advance();
        var found = 0;
        for (var i = start; i < start + Batch; i++)
        {
            if (_reference.Lookup(keys[i]) is not null)
            {
                found++;
            }
        }

        return found;
    }

    [BenchmarkCategory("Hit")]
    [Benchmark(OperationsPerInvoke = Batch)]
    public int LookupHit()
    {
        var keys = _hitKeys;
        var start = Advance();
        var found = 0;
        for (var i = start; i < start + Batch; i++)
        {
            if (_table.Lookup(keys[i]) is not null)
            {
                found++;
            }
        }

        return found;
    }

    private int Advance()
    {
        var start = _offset;
        _offset = (start + Batch) & (ServiceTableWorkload.KeyCount - 1);
        return start;
    }
}
