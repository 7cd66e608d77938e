using BenchmarkDotNet.Running;
using Serval.Benchmarks;

if (args.Length > 0 && args[0] == "--service-table-summary")
{
    return ServiceTableSummary.Run(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
