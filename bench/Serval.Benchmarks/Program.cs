using System.Globalization;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Serval.Benchmarks;

// `dotnet run -c Release -- wire` runs one named suite and prints its summary line last;
// anything else goes to BenchmarkDotNet's own switcher (e.g. --filter '*Wire*').
if (args.Length > 0 && args[0] == "--service-table-summary")
{
    return ServiceTableSummary.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "forward-send")
{
    return ForwardBenchmark.Send(args[1..]);
}

if (args.Length > 0 && args[0] == "forward-recv")
{
    return ForwardBenchmark.Receive(args[1..]);
}

if (args.Length > 0 && args[0] == "forward-router")
{
    return await ForwardBenchmark.RouterAsync(args[1..]).ConfigureAwait(false);
}

if (args.Length > 0 && args[0] == "stream-sim")
{
    return StreamSimBenchmark.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "secure")
{
    return SecureBenchmark.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "registration")
{
    return await RegistrationBenchmark.RunAsync(args[1..]).ConfigureAwait(false);
}

if (args.Length > 0 && args[0] == "delay-release")
{
    return await DelayReleaseBenchmark.RunAsync(args[1..]).ConfigureAwait(false);
}

if (args.Length > 0 && args[0] == "fleet")
{
    return await FleetBenchmark.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "migration")
{
    return await MigrationBenchmark.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "adhoc")
{
    return await AdhocBenchmark.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "http")
{
    return await HttpBenchmark.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "flows")
{
    return await FlowsBenchmark.RunAsync(args[1..]).ConfigureAwait(false);
}

if (args.Length > 0 && args[0] == "hostile")
{
    return await HostileBenchmark.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "wire")
{
    var summary = BenchmarkRunner.Run<WireBenchmarks>(SuiteConfig.Short());
    var parse = SuiteConfig.MedianNs(summary, nameof(WireBenchmarks.ParseSyn), nameof(WireBenchmarks.ParseData));
    var emit = SuiteConfig.MedianNs(summary, nameof(WireBenchmarks.EmitSyn), nameof(WireBenchmarks.EmitData));
    var alloc = SuiteConfig.MaxAllocated(summary);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wire: parse_ns={parse:F1} emit_ns={emit:F1} alloc_bytes={alloc}"));
    return 0;
}

BenchmarkSwitcher.FromAssembly(typeof(SuiteConfig).Assembly).Run(args);
return 0;

namespace Serval.Benchmarks
{
    /// <summary>Shared configuration and result extraction for the named suites.</summary>
    internal static class SuiteConfig
    {
        public static IConfig Short() => DefaultConfig.Instance
            .AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(10).WithLaunchCount(1))
            .WithOptions(ConfigOptions.DisableOptimizationsValidator);

        /// <summary>Median of the per-benchmark medians, in ns, for the named methods.</summary>
        public static double MedianNs(Summary summary, params string[] methods)
        {
            var medians = summary.Reports
                .Where(r => methods.Contains(r.BenchmarkCase.Descriptor.WorkloadMethod.Name) && r.ResultStatistics is not null)
                .Select(r => r.ResultStatistics!.Median)
                .OrderBy(x => x)
                .ToArray();
            if (medians.Length == 0)
            {
                return double.NaN;
            }

            return medians.Length % 2 == 1 ? medians[medians.Length / 2] : (medians[(medians.Length / 2) - 1] + medians[medians.Length / 2]) / 2;
        }

        /// <summary>Largest allocation per operation over every benchmark of the summary, in bytes.</summary>
        public static long MaxAllocated(Summary summary) => summary.Reports
            .Select(r => r.GcStats.GetBytesAllocatedPerOperation(r.BenchmarkCase) ?? 0)
            .DefaultIfEmpty(0)
            .Max();
    }
}
