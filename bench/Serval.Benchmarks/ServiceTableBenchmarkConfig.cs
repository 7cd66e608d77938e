using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;

namespace Serval.Benchmarks;

/// <summary>
/// A short job for the service-table benchmarks (one launch, 3 warm-up and 7 measured iterations) so that the
/// whole set runs in a few minutes; JSON results for <c>bench/run.sh</c>.
/// </summary>
public sealed class ServiceTableBenchmarkConfig : ManualConfig
{
    public ServiceTableBenchmarkConfig()
    {
        AddJob(Job.Default.WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(7).WithId("short"));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddExporter(JsonExporter.Brief);
    }
}
