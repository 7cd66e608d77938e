using Microsoft.Extensions.Logging.Abstractions;
using Serval.Daemon;

namespace Serval.Cli.Tests;

/// <summary>One in-process servald on a temporary control socket and a free 127.0.0.x UDP address.</summary>
public sealed class DaemonFixture : IAsyncLifetime
{
    private static int s_next = Environment.ProcessId % 200;

    internal ServalDaemon Daemon { get; private set; } = null!;

    public string SocketPath { get; } = Path.Combine(Path.GetTempPath(), $"servald-test-{Guid.NewGuid():N}.sock");

    public async ValueTask InitializeAsync()
    {
        var address = $"127.0.0.{2 + (Interlocked.Increment(ref s_next) % 250)}";
        Daemon = await ServalDaemon.StartAsync(
            new DaemonOptions { Name = "cli-test", ControlSocket = SocketPath, Udp = [new UdpEndpoint { Address = address, Port = 0 }] },
            NullLoggerFactory.Instance);
    }

    public async ValueTask DisposeAsync() => await Daemon.DisposeAsync();

    /// <summary>Runs servalctl with <c>--socket</c> pointing at this daemon.</summary>
    public CliResult Run(params string[] args) => CliResult.Run([.. args, "--socket", SocketPath]);
}
