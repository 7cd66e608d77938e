using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Serval.Links;
using Serval.Tools;
using Serval.Wire;

namespace Serval.Translate;

/// <summary>
/// <c>serval-translate tcp-to-serval|serval-to-tcp</c> (System.CommandLine). Runs until Ctrl-C or SIGTERM, then prints
/// the translator's counters. Exit codes: 0 stopped, 1 failure (cannot bind, cannot attach), 2 usage error.
/// </summary>
internal static class TranslateCommandLine
{
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken stop = default)
    {
        var udp = new Option<string[]>("--udp")
        {
            Description = "a UDP-encapsulation link of the embedded host on ADDRESS[:PORT] (repeatable; port default 54325)",
            HelpName = "ADDRESS[:PORT]",
            Recursive = true,
        };
        var raw = new Option<string[]>("--raw")
        {
            Description = "a raw IP (protocol 144) link of the embedded host on ADDRESS (repeatable; needs root or CAP_NET_RAW)",
            HelpName = "ADDRESS",
            Recursive = true,
        };
        var attach = new Option<string?>("--attach")
        {
            Description = $"use servald's host through its control socket instead of an embedded host (default socket {ServalHost.DefaultDaemonSocketPath})",
            HelpName = "SOCKET",
            Arity = ArgumentArity.ZeroOrOne,
            Recursive = true,
        };
        var maxConnections = new Option<int>("--max-connections")
        {
            Description = "relays at once (1 to 65536); more connections wait",
            HelpName = "N",
            DefaultValueFactory = _ => 1024,
            Recursive = true,
        };
        var connectTimeout = new Option<double>("--connect-timeout")
        {
            Description = "seconds to reach the other side before the accepted connection is reset (0.1 to 600)",
            HelpName = "SECONDS",
            DefaultValueFactory = _ => 10,
            Recursive = true,
        };

        var listen = new Option<string>("--listen", "-l") { Description = "the TCP endpoint clients connect to", HelpName = "ADDRESS:PORT", Required = true };
        var toService = new Option<string>("--service", "-s") { Description = "the service each TCP connection is relayed to: a name or a serviceID", HelpName = "NAME|ID", Required = true };
        var peer = new Option<string?>("--peer") { Description = "a host serving the service: its link address, used as the connections' advisory address", HelpName = "ADDRESS[:PORT]" };
        var router = new Option<string?>("--router") { Description = "the embedded host's default service router", HelpName = "ADDRESS[:PORT]" };
        var resolveFile = new Option<string?>("--resolve-file") { Description = "resolve on demand from this file of services and addresses (docs/resolution.md; embedded host)", HelpName = "PATH" };
        var resolveDns = new Option<string[]>("--resolve-dns") { Description = "resolve on demand in DNS with this server (repeatable; port default 53; needs --dns-zone)", HelpName = "SERVER[:PORT]" };
        var dnsZone = new Option<string?>("--dns-zone") { Description = "the zone of the DNS records (SRV _serval._udp.NAME, else A/AAAA NAME; NAME is the --service name or the serviceID)", HelpName = "ZONE" };
        var resolveRouters = new Option<bool>("--resolve-routers") { Description = "resolve on demand by asking the --router (a Resolve message), then connect straight to the answer" };
        var tcpToServal = new Command("tcp-to-serval", "relay TCP connections to a Serval service (unmodified clients reach Serval services)")
        {
            listen, toService, peer, router, resolveFile, resolveDns, dnsZone, resolveRouters,
        };

        var fromService = new Option<string>("--service", "-s") { Description = "the service (or prefix) served: NAME|ID[/BITS]", HelpName = "NAME|ID[/BITS]", Required = true };
        var target = new Option<string>("--target", "-t") { Description = "the TCP server each Serval connection is relayed to", HelpName = "HOST:PORT", Required = true };
        var register = new Option<string?>("--register-with") { Description = "register the service with this service router (embedded host)", HelpName = "ADDRESS[:PORT]" };
        var servalToTcp = new Command("serval-to-tcp", "serve a Serval service by relaying its connections to a TCP server (unmodified servers serve Serval clients)") { fromService, target, register };

        var root = new RootCommand("serval-translate: TCP-to-Serval and Serval-to-TCP translators.")
        {
            udp, raw, attach, maxConnections, connectTimeout, tcpToServal, servalToTcp,
        };

        maxConnections.Validators.Add(r =>
        {
            if (r.GetValue(maxConnections) is < 1 or > 65_536)
            {
                r.AddError("--max-connections must be 1 to 65536.");
            }
        });
        connectTimeout.Validators.Add(r =>
        {
            if (r.GetValue(connectTimeout) is var t && (!(t >= 0.1) || t > 600))
            {
                r.AddError("--connect-timeout must be 0.1 to 600 seconds.");
            }
        });

        tcpToServal.SetAction(async (p, ct) =>
        {
            if (!TryHostSettings(p, udp, raw, attach, error, out var host))
            {
                return 2;
            }

            if (!IPEndPoint.TryParse(p.GetValue(listen)!, out var listenEndPoint) || listenEndPoint.Port == 0 && !p.GetValue(listen)!.EndsWith(":0", StringComparison.Ordinal))
            {
                return Usage(error, $"--listen '{p.GetValue(listen)}' is not ADDRESS:PORT.");
            }

            if (!ServiceEndPoint.TryParse(p.GetValue(toService), out var service) || service.PrefixLength != ServiceId.Bits)
            {
                return Usage(error, $"--service '{p.GetValue(toService)}' is not a service name or serviceID.");
            }

            var advisory = LinkAddress.None;
            if (p.GetValue(peer) is { } peerText && !LinkOptions.TryParseLinkAddress(peerText, out advisory))
            {
                return Usage(error, $"--peer '{peerText}' is not ADDRESS[:PORT].");
            }

            var defaultRouter = LinkAddress.None;
            if (p.GetValue(router) is { } routerText)
            {
                if (host.Attach is not null)
                {
                    return Usage(error, "--router configures an embedded host; an attached translator uses servald's service table.");
                }

                if (!LinkOptions.TryParseLinkAddress(routerText, out defaultRouter))
                {
                    return Usage(error, $"--router '{routerText}' is not ADDRESS[:PORT].");
                }
            }

            if (!TryResolver(p, host, defaultRouter, p.GetValue(toService)!, resolveFile, resolveDns, dnsZone, resolveRouters, error, out var resolver))
            {
                return 2;
            }

            return await RunTranslatorAsync(host with { DefaultRouter = defaultRouter, Resolver = resolver }, output, error, async h =>
            {
                var t = new TcpToServalTranslator(
                    h, listenEndPoint, service.Service, advisory, p.GetValue(maxConnections), TimeSpan.FromSeconds(p.GetValue(connectTimeout)), line => error.WriteLine($"serval-translate: {line}"));
                t.Start();
                await error.WriteLineAsync($"serval-translate: listening on TCP {t.LocalEndPoint}, relaying to service {service.Service}").ConfigureAwait(false);
                return (t, t.Statistics);
            }, Linked(stop, ct)).ConfigureAwait(false);
        });

        servalToTcp.SetAction(async (p, ct) =>
        {
            if (!TryHostSettings(p, udp, raw, attach, error, out var host))
            {
                return 2;
            }

            if (!ServiceEndPoint.TryParse(p.GetValue(fromService), out var service))
            {
                return Usage(error, $"--service '{p.GetValue(fromService)}' is not NAME|ID[/BITS].");
            }

            if (!TryParseTarget(p.GetValue(target)!, out var targetEndPoint))
            {
                return Usage(error, $"--target '{p.GetValue(target)}' is not HOST:PORT.");
            }

            var registerWith = LinkAddress.None;
            if (p.GetValue(register) is { } registerText)
            {
                if (host.Attach is not null)
                {
                    return Usage(error, "--register-with configures an embedded host; servald registers an attached translator's service itself.");
                }

                if (!LinkOptions.TryParseLinkAddress(registerText, out registerWith))
                {
                    return Usage(error, $"--register-with '{registerText}' is not ADDRESS[:PORT].");
                }
            }

            return await RunTranslatorAsync(host with { RegisterWithRouter = registerWith }, output, error, async h =>
            {
                var t = await ServalToTcpTranslator.StartAsync(
                    h, service.Prefix, targetEndPoint, p.GetValue(maxConnections), TimeSpan.FromSeconds(p.GetValue(connectTimeout)), line => error.WriteLine($"serval-translate: {line}")).ConfigureAwait(false);
                await error.WriteLineAsync($"serval-translate: listening on service {service.Service}/{service.PrefixLength}, relaying to TCP {targetEndPoint}").ConfigureAwait(false);
                return (t, t.Statistics);
            }, Linked(stop, ct)).ConfigureAwait(false);
        });

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors)
            {
                await error.WriteLineAsync($"serval-translate: {e.Message}").ConfigureAwait(false);
            }

            return 2;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, stop).ConfigureAwait(false);
    }

    private static CancellationToken Linked(CancellationToken a, CancellationToken b) =>
        a.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(a, b).Token : b;

    private static int Usage(TextWriter error, string message)
    {
        error.WriteLine($"serval-translate: {message}");
        return 2;
    }

    /// <summary>How the translator gets its host: embedded with links, or attached to servald.</summary>
    private sealed record HostSettings(List<IPEndPoint> Udp, List<IPAddress> Raw, string? Attach)
    {
        public LinkAddress DefaultRouter { get; init; }

        public LinkAddress RegisterWithRouter { get; init; }

        public ResolverSettings? Resolver { get; init; }
    }

    /// <summary>Resolution on demand for the embedded host: the static file (read at start), DNS, the router.</summary>
    private sealed record ResolverSettings(string? File, Resolution.DnsResolverOptions? Dns, bool Routers);

    private static bool TryResolver(
        ParseResult p,
        HostSettings host,
        LinkAddress defaultRouter,
        string serviceText,
        Option<string?> resolveFile,
        Option<string[]> resolveDns,
        Option<string?> dnsZone,
        Option<bool> resolveRouters,
        TextWriter error,
        out ResolverSettings? resolver)
    {
        resolver = null;
        var file = p.GetValue(resolveFile);
        var servers = p.GetValue(resolveDns) ?? [];
        var zone = p.GetValue(dnsZone);
        var routers = p.GetValue(resolveRouters);
        if (file is null && servers.Length == 0 && zone is null && !routers)
        {
            return true;
        }

        if (host.Attach is not null)
        {
            Usage(error, "--resolve-* configures an embedded host; an attached translator uses servald's resolver (Serval:Resolver).");
            return false;
        }

        if ((servers.Length > 0) != (zone is not null))
        {
            Usage(error, "--resolve-dns and --dns-zone go together.");
            return false;
        }

        if (routers && defaultRouter.IsNone)
        {
            Usage(error, "--resolve-routers asks the --router: give one.");
            return false;
        }

        Resolution.DnsResolverOptions? dns = null;
        if (servers.Length > 0)
        {
            var endPoints = new List<IPEndPoint>();
            foreach (var text in servers)
            {
                if (!IPEndPoint.TryParse(text, out var ep))
                {
                    Usage(error, $"--resolve-dns '{text}' is not SERVER[:PORT].");
                    return false;
                }

                endPoints.Add(ep.Port == 0 ? new IPEndPoint(ep.Address, 53) : ep);
            }

            // A --service given as a name is looked up by that name (NAME.ZONE), not by its serviceID.
            var name = serviceText.Contains('/', StringComparison.Ordinal) || ServiceId.TryParse(serviceText, CultureInfo.InvariantCulture, out _) ? null : serviceText;
            dns = new Resolution.DnsResolverOptions { Servers = endPoints, Zone = zone!, Names = name is null ? [] : [name] };
            try
            {
                dns.Validate();
            }
            catch (ArgumentException e)
            {
                Usage(error, $"--resolve-dns/--dns-zone: {e.Message}");
                return false;
            }
        }

        if (file is not null)
        {
            try
            {
                _ = Resolution.StaticFileResolver.Parse(File.ReadAllText(file));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                Usage(error, $"--resolve-file {file}: {e.Message}");
                return false;
            }
        }

        resolver = new ResolverSettings(file, dns, routers);
        return true;
    }

    private static bool TryHostSettings(ParseResult p, Option<string[]> udp, Option<string[]> raw, Option<string?> attach, TextWriter error, out HostSettings settings)
    {
        settings = new HostSettings([], [], null);
        if (!LinkOptions.TryParse(p, udp, raw, attach, message => Usage(error, message), out var links))
        {
            return false;
        }

        settings = new HostSettings(links.Udp, links.Raw, links.Attach);
        return true;
    }

    /// <summary>HOST:PORT with an IP address or a DNS name.</summary>
    private static bool TryParseTarget(string text, out EndPoint target)
    {
        target = null!;
        if (IPEndPoint.TryParse(text, out var ep) && ep.Port != 0)
        {
            target = ep;
            return true;
        }

        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65_535)
        {
            return false;
        }

        var name = text[..colon];
        if (Uri.CheckHostName(name) != UriHostNameType.Dns)
        {
            return false;
        }

        target = new DnsEndPoint(name, port);
        return true;
    }

    private static async Task<int> RunTranslatorAsync(HostSettings settings, TextWriter output, TextWriter error, Func<ServalHost, Task<(IAsyncDisposable Translator, TranslatorStatistics Statistics)>> start, CancellationToken ct)
    {
        Resolution.StaticFileResolver? file = null;
        try
        {
            return await RunTranslatorAsync(settings, output, error, start, f => file = f, ct).ConfigureAwait(false);
        }
        finally
        {
            file?.Dispose();
        }
    }

    private static async Task<int> RunTranslatorAsync(
        HostSettings settings,
        TextWriter output,
        TextWriter error,
        Func<ServalHost, Task<(IAsyncDisposable Translator, TranslatorStatistics Statistics)>> start,
        Action<Resolution.StaticFileResolver> own,
        CancellationToken ct)
    {
        ServalHost host;
        try
        {
            host = await StartHostAsync(settings, own, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or PlatformNotSupportedException or IOException or ServalException or ArgumentException or FormatException)
        {
            await error.WriteLineAsync($"serval-translate: cannot start the host: {e.Message}").ConfigureAwait(false);
            return 1;
        }

        await using (host.ConfigureAwait(false))
        {
            IAsyncDisposable translator;
            TranslatorStatistics statistics;
            try
            {
                (translator, statistics) = await start(host).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ServalException)
            {
                await error.WriteLineAsync($"serval-translate: cannot listen: {e.Message}").ConfigureAwait(false);
                return 1;
            }

            // SIGTERM as well as Ctrl-C (System.CommandLine cancels ct on SIGINT) ends the translator.
            using var terminated = new CancellationTokenSource();
            using var sigterm = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
            {
                c.Cancel = true;
                terminated.Cancel();
            });
            using var until = CancellationTokenSource.CreateLinkedTokenSource(ct, terminated.Token);
            try
            {
                await Task.Delay(Timeout.Infinite, until.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            await translator.DisposeAsync().ConfigureAwait(false);
            await output.WriteLineAsync($"serval-translate: stopped; {statistics}").ConfigureAwait(false);
            return 0;
        }
    }

    private static async Task<ServalHost> StartHostAsync(HostSettings settings, Action<Resolution.StaticFileResolver> own, CancellationToken ct)
    {
        if (settings.Attach is { } socket)
        {
            return await ServalHost.AttachAsync(socket, ct).ConfigureAwait(false);
        }

        Resolution.ServalResolverOptions? resolver = null;
        var registration = Stack.ControlPlane.HostControllerOptions.Default;
        if (settings.Resolver is { } r)
        {
            var sources = new List<Resolution.IAsyncServiceResolver>();
            if (r.File is not null)
            {
                var file = new Resolution.StaticFileResolver(r.File);
                own(file);
                sources.Add(file);
            }

            if (r.Dns is not null)
            {
                sources.Add(new Resolution.DnsServiceResolver(r.Dns));
            }

            resolver = new Resolution.ServalResolverOptions { Sources = sources, AskRouters = r.Routers };
            if (r.Routers)
            {
                // The router is asked through the host controller (no registrations: the translator binds nothing).
                var families = settings.Udp.Select(e => e.AddressFamily).Concat(settings.Raw.Select(a => a.AddressFamily)).ToList();
                var index = families.IndexOf(settings.DefaultRouter.Family);
                registration = registration with { Routers = [new Stack.ControlPlane.RouterEndpoint(settings.DefaultRouter, index + 1)], InstallDefaultRule = false };
            }
        }

        var links = new List<ServalLink>();
        try
        {
            foreach (var ep in settings.Udp)
            {
                links.Add(new UdpLink(ep));
            }

            foreach (var ip in settings.Raw)
            {
                links.Add(new RawIpLink(ip));
            }

            return await ServalHost.StartAsync(
                new ServalHostOptions
                {
                    Name = "serval-translate",
                    Links = links,
                    DefaultRouter = settings.DefaultRouter,
                    RegisterWithRouter = settings.RegisterWithRouter,
                    Resolver = resolver,
                    Registration = registration,
                },
                ct).ConfigureAwait(false);
        }
        catch
        {
            foreach (var link in links)
            {
                link.Dispose();
            }

            throw;
        }
    }
}
