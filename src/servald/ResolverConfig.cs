using System.Globalization;
using System.Net;
using Serval.Resolution;
using Serval.Stack;
using Serval.Stack.ControlPlane;

namespace Serval.Daemon;

/// <summary>What <c>Serval:Resolver</c> asks for, checked (the static file parsed) before anything starts.</summary>
internal sealed record ResolverPlan(string? StaticFile, TimeSpan StaticTtl, DnsResolverOptions? Dns, ServalResolverOptions Options)
{
    /// <summary>The resolver options with their sources created (the static file read and watched); the sources are the caller's to dispose.</summary>
    /// <exception cref="DaemonException">The static file cannot be read or does not parse any more.</exception>
    public (ServalResolverOptions Options, IReadOnlyList<IDisposable> Owned) Create()
    {
        var sources = new List<IAsyncServiceResolver>();
        var owned = new List<IDisposable>();
        if (StaticFile is not null)
        {
            try
            {
                var file = new StaticFileResolver(StaticFile, StaticTtl);
                sources.Add(file);
                owned.Add(file);
            }
            catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
            {
                throw new DaemonException($"Serval:Resolver:StaticFile: {StaticFile}: {e.Message}", e);
            }
        }

        if (Dns is not null)
        {
            sources.Add(new DnsServiceResolver(Dns));
        }

        return (Options with { Sources = sources }, owned);
    }
}

/// <summary>Turns <c>Serval:Resolver</c> into a <see cref="ResolverPlan"/>; every mistake is a <see cref="DaemonException"/> naming the key.</summary>
internal static class ResolverConfig
{
    public static ResolverPlan? Plan(DaemonOptions options, bool hasRouters)
    {
        if (options.Resolver is not { } r)
        {
            return null;
        }

        if (r.StaticFile is null && r.Dns is null && !r.Routers)
        {
            throw new DaemonException("Serval:Resolver needs a source: StaticFile, Dns or Routers");
        }

        string? file = null;
        if (r.StaticFile is { } path)
        {
            if (string.IsNullOrWhiteSpace(path))
            {
                throw new DaemonException("Serval:Resolver:StaticFile is empty");
            }

            file = Path.GetFullPath(path);
            try
            {
                _ = StaticFileResolver.Parse(File.ReadAllText(file));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                throw new DaemonException($"Serval:Resolver:StaticFile: {file}: {e.Message}", e);
            }
        }

        if (r.Routers)
        {
            if (options.Mode != EngineMode.Host)
            {
                throw new DaemonException("Serval:Resolver:Routers is for Host mode (a service router answers Resolve messages itself)");
            }

            if (!hasRouters)
            {
                throw new DaemonException("Serval:Resolver:Routers needs routers (Serval:Registration:Routers or Serval:RegisterWithRouter)");
            }
        }

        var dns = r.Dns is { } d ? Dns(d) : null;
        var resolver = new ServalResolverOptions
        {
            AskRouters = r.Routers,
            DelayPriority = r.DelayPriority,
            Timeout = Milliseconds(r.TimeoutMs, "Serval:Resolver:TimeoutMs"),
            Controller = ResolverControllerOptions.Default with
            {
                MaxAnswers = Positive(r.MaxAnswers, "Serval:Resolver:MaxAnswers"),
                NegativeLifetime = Milliseconds(r.NegativeTtlMs, "Serval:Resolver:NegativeTtlMs"),
            },
        };
        try
        {
            // Validated with a placeholder source: the real ones are created at start.
            (resolver with { Sources = resolver.AskRouters ? [] : [Placeholder.Instance] }).Validate();
        }
        catch (ArgumentException e)
        {
            throw new DaemonException($"invalid Serval:Resolver: {e.Message}", e);
        }

        return new ResolverPlan(file, Milliseconds(r.StaticTtlMs, "Serval:Resolver:StaticTtlMs"), dns, resolver);
    }

    /// <summary><c>Serval:Router:DnsUpdate</c> as options, or null; only with the router controller.</summary>
    public static DnsUpdateOptions? Publish(DaemonOptions options, bool routerController)
    {
        if (options.Router?.DnsUpdate is not { } u)
        {
            return null;
        }

        if (!routerController)
        {
            throw new DaemonException("Serval:Router:DnsUpdate needs the router controller (ServiceRouter mode, Serval:Router:Enabled)");
        }

        if (u.Server is null || !IPEndPoint.TryParse(u.Server, out var server))
        {
            throw new DaemonException($"Serval:Router:DnsUpdate:Server: '{u.Server}' is not an address[:port]");
        }

        var publish = new DnsUpdateOptions
        {
            Server = server.Port == 0 ? new IPEndPoint(server.Address, 53) : server,
            Zone = u.Zone ?? throw new DaemonException("Serval:Router:DnsUpdate:Zone is missing"),
            RecordTtl = TimeSpan.FromSeconds(Positive(u.TtlSeconds, "Serval:Router:DnsUpdate:TtlSeconds")),
        };
        try
        {
            publish.Validate();
        }
        catch (ArgumentException e)
        {
            throw new DaemonException($"invalid Serval:Router:DnsUpdate: {e.Message}", e);
        }

        return publish;
    }

    private static DnsResolverOptions Dns(DnsSettings d)
    {
        if (d.Servers.Count == 0)
        {
            throw new DaemonException("Serval:Resolver:Dns:Servers lists no server");
        }

        var servers = d.Servers.Select((text, i) =>
        {
            if (!IPEndPoint.TryParse(text, out var ep))
            {
                throw new DaemonException($"Serval:Resolver:Dns:Servers:{i.ToString(CultureInfo.InvariantCulture)}: '{text}' is not an address[:port]");
            }

            return ep.Port == 0 ? new IPEndPoint(ep.Address, 53) : ep;
        }).ToList();
        var options = new DnsResolverOptions
        {
            Servers = servers,
            Zone = d.Zone ?? throw new DaemonException("Serval:Resolver:Dns:Zone is missing"),
            Names = d.Names,
            Timeout = Milliseconds(d.TimeoutMs, "Serval:Resolver:Dns:TimeoutMs"),
            Attempts = d.Attempts,
            MaxTtl = TimeSpan.FromSeconds(Positive(d.MaxTtlSeconds, "Serval:Resolver:Dns:MaxTtlSeconds")),
            NegativeTtl = TimeSpan.FromSeconds(Positive(d.NegativeTtlSeconds, "Serval:Resolver:Dns:NegativeTtlSeconds")),
        };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new DaemonException($"invalid Serval:Resolver:Dns: {e.Message}", e);
        }

        return options;
    }

    private static int Positive(int value, string key) =>
        value > 0 ? value : throw new DaemonException($"{key} must be positive (was {value.ToString(CultureInfo.InvariantCulture)})");

    private static TimeSpan Milliseconds(int value, string key) => TimeSpan.FromMilliseconds(Positive(value, key));

    private sealed class Placeholder : IAsyncServiceResolver
    {
        public static readonly Placeholder Instance = new();

        public ValueTask<ResolverAnswer> ResolveAsync(ServiceId service, CancellationToken cancellationToken) =>
            throw new NotSupportedException();
    }
}
