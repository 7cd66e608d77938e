using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serval.Daemon;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddHostedService<DaemonService>();
using var host = builder.Build();
try
{
    await host.RunAsync().ConfigureAwait(false);
    return 0;
}
catch (DaemonException e)
{
    await Console.Error.WriteLineAsync($"servald: {e.Message}").ConfigureAwait(false);
    return 1;
}
