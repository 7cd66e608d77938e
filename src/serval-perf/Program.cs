using Serval.Perf;

return await PerfCommandLine.RunAsync(args, Console.Out, Console.Error).ConfigureAwait(false);
