using Serval.Cat;

return await CatCommandLine.RunAsync(args, Console.OpenStandardInput(), Console.OpenStandardOutput(), Console.Error, Console.IsInputRedirected).ConfigureAwait(false);
