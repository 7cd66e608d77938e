namespace Serval.AspNetCore;

/// <summary>
/// The <see cref="ServalHost"/> of an application that lets the web host own it
/// (<see cref="ServalWebHostBuilderExtensions.UseServal(Microsoft.AspNetCore.Hosting.IWebHostBuilder, Func{IServiceProvider, ServalHostOptions})"/>):
/// started once, at the first bind or the first <see cref="GetHostAsync"/>, and disposed with the application's
/// services. Resolve it from dependency injection to open connections or datagram sockets on the same host.
/// </summary>
public sealed class ServalHostAccessor : IAsyncDisposable
{
    private readonly Func<ServalHostOptions> _options;
    private readonly Lock _lock = new();
    private Task<ServalHost>? _start;
    private bool _disposed;

    internal ServalHostAccessor(Func<ServalHostOptions> options) => _options = options;

    /// <summary>The host, started on the first call; a failed start is retried by the next call.</summary>
    /// <param name="cancellationToken">Abandons the wait (not the start).</param>
    /// <returns>The started host.</returns>
    /// <exception cref="ObjectDisposedException">The application's services were disposed.</exception>
    public Task<ServalHost> GetHostAsync(CancellationToken cancellationToken = default)
    {
        Task<ServalHost> start;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_start is null || _start.IsFaulted || _start.IsCanceled)
            {
                _start = StartAsync();
            }

            start = _start;
        }

        return start.WaitAsync(cancellationToken);
    }

    private async Task<ServalHost> StartAsync() => await ServalHost.StartAsync(_options()).ConfigureAwait(false);

    /// <summary>Disposes the host if it was started.</summary>
    /// <returns>A task that completes when the host has stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        Task<ServalHost>? start;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            start = _start;
        }

        if (start is not null)
        {
            try
            {
                await (await start.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // It never started: nothing to stop.
            }
        }
    }
}
