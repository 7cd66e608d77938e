using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace Serval.Benchmarks;

/// <summary>
/// A short in-process job for the service-table benchmarks (2 warm-up and 5 measured iterations of 250 ms) so that
/// the tables are built once per run and the whole set takes a few minutes; JSON results for <c>bench/run.sh</c>.
/// No forced full collection between iterations: lookups allocate nothing, and collecting a heap of a million
/// entries (and the baseline's ten million nodes) would dominate the run time.
/// </summary>
public sealed class ServiceTableBenchmarkConfig : ManualConfig
{
    public ServiceTableBenchmarkConfig()
    {
        AddJob(Job.Default
            .WithToolchain(new InProcessEmitToolchain(TimeSpan.FromMinutes(20), logOutput: true))
            .WithLaunchCount(1)
            .WithWarmupCount(2)
            .WithIterationCount(5)
            .WithIterationTime(TimeInterval.FromMilliseconds(250))
            .WithGcForce(false)
            .WithId("short"));
        AddDiagnoser(MemoryDiagnoser.Default);
        AddExporter(JsonExporter.Brief);
    }
}
