using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Serval.Daemon;

/// <summary>Runs one <see cref="ServalDaemon"/> for the lifetime of the Generic Host.</summary>
internal sealed partial class DaemonService(IConfiguration configuration, ILoggerFactory loggerFactory) : IHostedService
{
    private readonly ILogger _logger = loggerFactory.CreateLogger<DaemonService>();
    private ServalDaemon? _daemon;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        DaemonOptions options;
        try
        {
            options = configuration.GetSection(DaemonOptions.Section).Get<DaemonOptions>() ?? new DaemonOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new DaemonException($"invalid configuration: {e.Message}", e);
        }

        _daemon = await ServalDaemon.StartAsync(options, loggerFactory, cancellationToken).ConfigureAwait(false);
        if (_logger.IsEnabled(LogLevel.Information))
        {
            var mode = options.Mode.ToString();
            var links = string.Join(", ", _daemon.Host.Links.Select(l => l.Name));
            Started(_logger, _daemon.Host.Name, mode, links, _daemon.ControlSocket);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_daemon is not null)
        {
            await _daemon.DisposeAsync().ConfigureAwait(false);
            _daemon = null;
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "servald {Name} started in {Mode} mode; links: {Links}; control socket {Socket}")]
    private static partial void Started(ILogger logger, string name, string mode, string links, string socket);
}
