using Serval.Translate;

return await TranslateCommandLine.RunAsync(args, Console.Out, Console.Error).ConfigureAwait(false);
