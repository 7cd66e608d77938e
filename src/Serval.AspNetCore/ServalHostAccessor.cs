namespace Serval.AspNetCore;

/// <summary>
/// The <see cref="ServalHost"/> of an application that lets its services own it
/// (<see cref="ServalServiceCollectionExtensions.AddServal(Microsoft.Extensions.DependencyInjection.IServiceCollection, Action{ServalOptions}?)"/>,
/// or <see cref="ServalWebHostBuilderExtensions.UseServal(Microsoft.AspNetCore.Hosting.IWebHostBuilder, Func{IServiceProvider, ServalHostOptions})"/>):
/// started once — when the application starts, at Kestrel's first bind or at the first <see cref="GetHostAsync"/>,
/// whichever comes first — and stopped when the application stops (or its services are disposed). Resolve it from
/// dependency injection to open connections or datagram sockets on the same host.
/// </summary>
public sealed class ServalHostAccessor : IAsyncDisposable
{
    private readonly Func<CancellationToken, ValueTask<ServalHost>> _start;
    private readonly Lock _lock = new();
    private readonly List<ServalConnectionListener> _listeners = [];
    private Task<ServalHost>? _starting;
    private bool _disposed;

    internal ServalHostAccessor(Func<ServalHostOptions> options)
        : this(ct => ServalHost.StartAsync(options(), ct))
    {
    }

    internal ServalHostAccessor(Func<CancellationToken, ValueTask<ServalHost>> start) => _start = start;

    /// <summary>The host, started on the first call; a failed start is retried by the next call.</summary>
    /// <param name="cancellationToken">Abandons the wait (not the start).</param>
    /// <returns>The started host.</returns>
    /// <exception cref="ObjectDisposedException">The application has stopped.</exception>
    public Task<ServalHost> GetHostAsync(CancellationToken cancellationToken = default)
    {
        Task<ServalHost> start;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_starting is null || _starting.IsFaulted || _starting.IsCanceled)
            {
                _starting = StartAsync();
            }

            start = _starting;
        }

        return start.WaitAsync(cancellationToken);
    }

    /// <summary>The host if it has started, else null (without starting it).</summary>
    public ServalHost? Host
    {
        get
        {
            lock (_lock)
            {
                return _starting is { IsCompletedSuccessfully: true } s ? s.Result : null;
            }
        }
    }

    /// <summary>Why the last start failed, or null.</summary>
    internal Exception? StartFailure
    {
        get
        {
            lock (_lock)
            {
                return _starting is { IsFaulted: true } s ? s.Exception?.InnerException ?? s.Exception : null;
            }
        }
    }

    /// <summary>The services Kestrel has bound on this host, still bound.</summary>
    internal IReadOnlyList<ServalConnectionListener> Listeners
    {
        get
        {
            lock (_lock)
            {
                return [.. _listeners];
            }
        }
    }

    internal void Add(ServalConnectionListener listener)
    {
        lock (_lock)
        {
            _listeners.Add(listener);
        }
    }

    internal void Remove(ServalConnectionListener listener)
    {
        lock (_lock)
        {
            _listeners.Remove(listener);
        }
    }

    private async Task<ServalHost> StartAsync() => await _start(CancellationToken.None).ConfigureAwait(false);

    /// <summary>Stops the host if it was started (open connections are reset; bound services unregister).</summary>
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
            start = _starting;
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
