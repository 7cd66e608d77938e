using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Serval.Daemon;

if (Usage.IsHelp(args))
{
    await Console.Out.WriteLineAsync(Usage.Text).ConfigureAwait(false);
    return 0;
}

if (Usage.IsVersion(args))
{
    await Console.Out.WriteLineAsync($"servald {Usage.Version}").ConfigureAwait(false);
    return 0;
}

// Everything is checked before anything binds a socket; a failure is one line on stderr and exit code 1.
HostApplicationBuilder builder;
DaemonPlan plan;
try
{
    builder = Host.CreateApplicationBuilder(args);
    ConfigurationFiles.AddBinaryDirectoryFile(builder.Configuration, builder.Environment.ContentRootPath);
    plan = DaemonPlan.Create(DaemonConfiguration.Bind(builder.Configuration));
}
catch (Exception e) when (e is DaemonException or InvalidDataException or FormatException)
{
    // InvalidDataException: appsettings.json is not JSON; FormatException: a malformed command-line switch.
    var message = e is DaemonException ? e.Message : DaemonConfiguration.OneLine(e);
    const string Prefix = "invalid configuration: ";
    return await FailAsync(message.StartsWith(Prefix, StringComparison.Ordinal) ? message : Prefix + message).ConfigureAwait(false);
}

// Under systemd (Type=notify): READY=1 once everything is bound (the host starts after the daemon), STOPPING=1 on
// SIGTERM, and log lines in the journal's format.
builder.Services.AddSystemd();
using var host = builder.Build();
ServalDaemon daemon;
try
{
    daemon = await ServalDaemon.StartAsync(plan, host.Services.GetRequiredService<ILoggerFactory>()).ConfigureAwait(false);
}
catch (DaemonException e)
{
    return await FailAsync(e.Message).ConfigureAwait(false);
}

await using (daemon.ConfigureAwait(false))
{
    await host.StartAsync().ConfigureAwait(false);
    await host.WaitForShutdownAsync().ConfigureAwait(false);
}

return 0;

static async Task<int> FailAsync(string message)
{
    await Console.Error.WriteLineAsync($"servald: {message.ReplaceLineEndings(" ")}").ConfigureAwait(false);
    return 1;
}
