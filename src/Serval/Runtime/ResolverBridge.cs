using Serval.Links;
using Serval.Resolution;
using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval.Runtime;

/// <summary>
/// Connects the engine's <see cref="ResolverController"/> (engine thread, sans-I/O) to the host's
/// <see cref="IAsyncServiceResolver"/> sources: every lookup answers <see cref="ServiceResolution.Pending"/> at once
/// and runs on the thread pool — the sources in order until one answers positively, then, with
/// <see cref="ServalResolverOptions.AskRouters"/>, the registration routers — and its result is handed back to the
/// engine thread, where the controller installs it and the engine releases the held packets.
/// </summary>
internal sealed class ResolverBridge : IDeferredServiceResolver, IDisposable
{
    private readonly EngineDriver _driver;
    private readonly ServalResolverOptions _options;
    private readonly CancellationTokenSource _stopping = new();
    private ResolverController? _controller;
    private int _running;

    public ResolverBridge(EngineDriver driver, ServalResolverOptions options)
    {
        _driver = driver;
        _options = options;
        foreach (var file in options.Sources.OfType<StaticFileResolver>())
        {
            file.Reloaded += OnReloaded;
        }
    }

    /// <summary>Lookups running now.</summary>
    public int Running => Volatile.Read(ref _running);

    public ResolverController Controller => _controller ?? throw new InvalidOperationException("The resolver bridge is not attached.");

    public void Attach(ResolverController controller) => _controller = controller;

    /// <summary>Engine thread: starts the lookup on the thread pool.</summary>
    public ServiceResolution? Resolve(ServiceId service, TimeSpan now)
    {
        if (_stopping.IsCancellationRequested)
        {
            return null;
        }

        Interlocked.Increment(ref _running);
        var parent = _driver.ConnectContextOf(service);
        _ = Task.Run(() => RunAsync(service, parent));
        return ServiceResolution.Pending;
    }

    public void Dispose()
    {
        foreach (var file in _options.Sources.OfType<StaticFileResolver>())
        {
            file.Reloaded -= OnReloaded;
        }

        _stopping.Cancel();
    }

    private async Task RunAsync(ServiceId service, System.Diagnostics.ActivityContext parent)
    {
        ServiceResolution? result = null;
        var activity = ServalTelemetry.Start("serval.resolve", System.Diagnostics.ActivityKind.Client, _driver.Name, service, parent: parent);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(_options.Timeout);
            result = await ResolveAsync(service, timeout.Token).ConfigureAwait(false);
            if (activity is not null)
            {
                activity.SetTag("serval.resolve.targets", result is null ? 0 : result.Targets.Count);
                if (result is null)
                {
                    activity.SetTag(ServalTelemetry.ResultTag, "failed");
                    activity.SetTag(ServalTelemetry.ErrorTypeTag, "SourceFailed");
                    activity.SetStatus(System.Diagnostics.ActivityStatusCode.Error, "no source answered");
                    activity.Dispose();
                }
                else
                {
                    ServalTelemetry.Succeeded(activity, result.IsNotFound ? "not_found" : "found");
                }
            }
        }
        catch (OperationCanceledException e)
        {
            if (!_stopping.IsCancellationRequested)
            {
                HostLog.ResolveTimedOut(_driver.Logger, _driver.Name, service.ToString(), _options.Timeout.TotalMilliseconds);
            }

            if (activity is not null)
            {
                activity.SetTag(ServalTelemetry.ErrorTypeTag, "TimedOut");
                ServalTelemetry.Failed(activity, e);
            }
        }
        catch (Exception e)
        {
            HostLog.ResolveFailed(_driver.Logger, e, _driver.Name, service.ToString(), "resolver");
            ServalTelemetry.Failed(activity, e);
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }

        if (!_stopping.IsCancellationRequested)
        {
            _driver.Post(new EngineWorkItem(d => _controller?.Complete(service, result, d.Now)));
        }
    }

    /// <summary>The sources in order, then the routers: the first positive answer; a negative one if everybody said so; else null.</summary>
    private async Task<ServiceResolution?> ResolveAsync(ServiceId service, CancellationToken cancellationToken)
    {
        var failed = false;
        TimeSpan? negative = null;
        foreach (var source in _options.Sources)
        {
            ResolverAnswer answer;
            try
            {
                answer = await source.ResolveAsync(service, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                failed = true;
                HostLog.ResolveFailed(_driver.Logger, e, _driver.Name, service.ToString(), source.GetType().Name);
                continue;
            }

            if (answer.IsFound && answer.Prefix.Contains(service))
            {
                if (ToResolution(answer) is { } resolution)
                {
                    return resolution;
                }

                failed = true;
                HostLog.ResolveNoLink(_driver.Logger, _driver.Name, service.ToString(), string.Join(", ", answer.Targets.Select(t => t.Address)));
                continue;
            }

            negative = negative is { } n && n < answer.Ttl ? n : answer.Ttl;
        }

        if (_options.AskRouters)
        {
            var fromRouters = await AskRoutersAsync(service, cancellationToken).ConfigureAwait(false);
            if (fromRouters is { IsNotFound: false })
            {
                return fromRouters;
            }

            if (fromRouters is null)
            {
                failed = true;
            }
            else
            {
                negative = negative is { } n && n < fromRouters.Lifetime ? n : fromRouters.Lifetime;
            }
        }

        return failed ? null : ServiceResolution.NotFound(negative);
    }

    private async Task<ServiceResolution?> AskRoutersAsync(ServiceId service, CancellationToken cancellationToken)
    {
        var answer = new TaskCompletionSource<ServiceResolution?>(TaskCreationOptions.RunContinuationsAsynchronously);
        _driver.Post(new EngineWorkItem(d =>
        {
            if (d.HostController is not { } host || !host.Resolve(service, d.Now, (_, r, _) => answer.TrySetResult(r)))
            {
                answer.TrySetResult(null);
            }
        }));
        return await answer.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The answer's targets on this host's links: each on the first link of its address family (port 0 on a UDP link
    /// becomes the default port); targets no link can reach, and this host's own link addresses, are left out. Null
    /// when none is left.
    /// </summary>
    private ServiceResolution? ToResolution(ResolverAnswer answer)
    {
        var links = _driver.Links;
        var targets = new List<ResolvedTarget>();
        foreach (var t in answer.Targets)
        {
            for (var i = 0; i < links.Count; i++)
            {
                if (links[i].LocalAddress.Family != t.Address.Family)
                {
                    continue;
                }

                var address = t.Address.Port == 0 && links[i] is UdpLink ? t.Address.WithPort(ServalInfo.DefaultUdpPort) : t.Address;
                if (!links.Any(l => l.LocalAddress == address) && !targets.Any(x => x.Address == address))
                {
                    targets.Add(new ResolvedTarget(address, i + 1, t.Weight));
                }

                break;
            }
        }

        return targets.Count == 0 ? null : new ServiceResolution(answer.Prefix, targets, answer.Ttl);
    }

    private void OnReloaded(object? sender, EventArgs e)
    {
        if (sender is StaticFileResolver file)
        {
            if (file.LastError is { } error)
            {
                HostLog.ResolverFileInvalid(_driver.Logger, _driver.Name, file.Path, error.Message);
                return;
            }

            HostLog.ResolverFileReloaded(_driver.Logger, _driver.Name, file.Path, file.Count);
        }

        _driver.Post(new EngineWorkItem(d => _controller?.Flush(d.Now)));
    }
}

/// <summary>An action on the engine thread that nothing waits for (abandoned silently when the host stops).</summary>
internal sealed class EngineWorkItem(Action<EngineDriver> action) : IWorkItem
{
    public void Execute(EngineDriver driver)
    {
        try
        {
            action(driver);
        }
        catch (Exception e)
        {
            driver.OnDriverFault("resolver", e);
        }
    }

    public void Abandon(Exception reason)
    {
    }
}
