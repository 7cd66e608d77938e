using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using Serval.Links;
using Serval.Stack;
using Serval.Tools;
using Serval.Wire;

namespace Serval.Cat;

/// <summary>serval-cat's exit codes (documented in <c>--help</c> and docs/serval-cat.md).</summary>
internal static class ExitCodes
{
    /// <summary>Both directions ended normally.</summary>
    public const int Success = 0;

    /// <summary>The host could not start or attach, the service could not be bound, the flow was reset, an I/O error.</summary>
    public const int Failure = 1;

    /// <summary>A usage error.</summary>
    public const int Usage = 2;

    /// <summary>The service could not be reached: no listener (refused), no node knew it (not found), or no route.</summary>
    public const int Unreachable = 3;

    /// <summary>No answer within <c>--wait</c> (connect), or no peer within it (listen).</summary>
    public const int TimedOut = 4;

    /// <summary>Interrupted by Ctrl-C or SIGTERM.</summary>
    public const int Interrupted = 130;
}

/// <summary>
/// <c>serval-cat listen|connect SERVICE</c> (System.CommandLine): netcat for services. Standard input goes to the
/// flow and the flow to standard output, over a stream (default) or connected datagrams (<c>-u</c>), with an
/// embedded host (<c>--udp</c>/<c>--raw</c> links, <c>--router</c>) or attached to servald (<c>--attach</c>), as
/// serval-translate chooses its host.
/// </summary>
internal static class CatCommandLine
{
    /// <summary>The usage text's list of exit codes.</summary>
    public const string ExitCodeHelp =
        "Exit codes: 0 both directions ended normally; 1 failure (host, bind, reset, I/O); 2 usage error; " +
        "3 service unreachable (refused: no listener; not found; no route); 4 timed out (--wait); 130 interrupted.";

    public static async Task<int> RunAsync(string[] args, Stream input, Stream output, TextWriter error, bool inputIsRedirected, CancellationToken stop = default)
    {
        var udp = new Option<string[]>("--udp")
        {
            Description = "a UDP-encapsulation link of the embedded host on ADDRESS[:PORT] (repeatable; port default 54325, which a router's SOURCE extension assumes)",
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
        var router = new Option<string?>("--router")
        {
            Description = "the embedded host's service router: connect resolves through it, listen registers the service with it",
            HelpName = "ADDRESS[:PORT]",
            Recursive = true,
        };
        var datagram = new Option<bool>("--datagram", "-u") { Description = "connected datagrams instead of a stream: each read of standard input is one datagram", Recursive = true };
        var size = new Option<int>("--size")
        {
            Description = "largest datagram sent with -u, in bytes (1 to 65000)",
            HelpName = "BYTES",
            DefaultValueFactory = _ => 1200,
            Recursive = true,
        };
        var wait = new Option<double?>("--wait", "-w")
        {
            Description = "seconds to wait for the connection (connect; default 30) or for a peer (listen; default: no limit)",
            HelpName = "SECONDS",
            Recursive = true,
        };
        var quit = new Option<double>("--quit-after", "-q")
        {
            Description = "with -u, connect: seconds to keep receiving after the end of standard input before closing the flow (0 to 3600)",
            HelpName = "SECONDS",
            Recursive = true,
        };

        var listenService = new Argument<string>("SERVICE") { Description = "the service (or prefix) to serve: NAME|ID[/BITS]" };
        var listen = new Command("listen", "serve the service: accept one peer and relay it to standard input and output, then exit") { listenService };

        var connectService = new Argument<string>("SERVICE") { Description = "the service to connect to: NAME|ID" };
        var peer = new Option<string?>("--peer") { Description = "a host serving the service: its link address, used as the connection's advisory address", HelpName = "ADDRESS[:PORT]" };
        var connect = new Command("connect", "connect to the service and relay it to standard input and output, then exit") { connectService, peer };

        var root = new RootCommand($"serval-cat: netcat for Serval services. Standard input goes to the flow, the flow to standard output; end of input closes the sending side (a stream's half-close). {ExitCodeHelp}")
        {
            udp, raw, attach, router, datagram, size, wait, quit, listen, connect,
        };

        size.Validators.Add(r =>
        {
            if (r.GetValue(size) is < 1 or > 65_000)
            {
                r.AddError("--size must be 1 to 65000 bytes.");
            }
        });
        wait.Validators.Add(r =>
        {
            if (r.GetValue(wait) is { } w && (!(w > 0) || w > 86_400))
            {
                r.AddError("--wait must be more than 0 and at most 86400 seconds.");
            }
        });
        quit.Validators.Add(r =>
        {
            if (r.GetValue(quit) is var q && (!(q >= 0) || q > 3600))
            {
                r.AddError("--quit-after must be 0 to 3600 seconds.");
            }
        });

        listen.SetAction(async (p, ct) =>
        {
            if (!TryHostSettings(p, udp, raw, attach, router, listening: true, error, out var host))
            {
                return ExitCodes.Usage;
            }

            var text = p.GetValue(listenService)!;
            if (!ServiceEndPoint.TryParse(text, out var service) || !service.AdvisoryAddress.IsNone)
            {
                return Usage(error, $"'{text}' is not a service: NAME|ID[/BITS].");
            }

            var settings = Settings(p, datagram, size, wait, quit, input, output, error, inputIsRedirected);
            return await RunAsync(host, settings, (h, s, c) => CatSession.ListenAsync(h, service, text, s, c), Linked(stop, ct)).ConfigureAwait(false);
        });

        connect.SetAction(async (p, ct) =>
        {
            if (!TryHostSettings(p, udp, raw, attach, router, listening: false, error, out var host))
            {
                return ExitCodes.Usage;
            }

            var text = p.GetValue(connectService)!;
            if (!ServiceEndPoint.TryParse(text, out var service) || service.PrefixLength != ServiceId.Bits)
            {
                return Usage(error, $"'{text}' is not a service: NAME|ID.");
            }

            var advisory = service.AdvisoryAddress;
            if (p.GetValue(peer) is { } peerText && !LinkOptions.TryParseLinkAddress(peerText, out advisory))
            {
                return Usage(error, $"--peer '{peerText}' is not ADDRESS[:PORT].");
            }

            var settings = Settings(p, datagram, size, wait, quit, input, output, error, inputIsRedirected);
            return await RunAsync(host, settings, (h, s, c) => CatSession.ConnectAsync(h, service.Service, advisory, text, s, c), Linked(stop, ct)).ConfigureAwait(false);
        });

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors)
            {
                await error.WriteLineAsync($"serval-cat: {e.Message}").ConfigureAwait(false);
            }

            await error.WriteLineAsync("Run 'serval-cat --help' for usage.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        using var console = new StreamWriter(output, leaveOpen: true) { AutoFlush = true };
        return await parse.InvokeAsync(new InvocationConfiguration { Output = console, Error = error }, stop).ConfigureAwait(false);
    }

    private static CatSettings Settings(
        ParseResult p, Option<bool> datagram, Option<int> size, Option<double?> wait, Option<double> quit, Stream input, Stream output, TextWriter error, bool inputIsRedirected) =>
        new(
            p.GetValue(datagram),
            p.GetValue(size),
            p.GetValue(wait) is { } w ? TimeSpan.FromSeconds(w) : null,
            TimeSpan.FromSeconds(p.GetValue(quit)),
            input,
            output,
            error,
            inputIsRedirected);

    private static CancellationToken Linked(CancellationToken a, CancellationToken b) =>
        a.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(a, b).Token : b;

    private static int Usage(TextWriter error, string message)
    {
        error.WriteLine($"serval-cat: {message}");
        return ExitCodes.Usage;
    }

    /// <summary>How serval-cat gets its host: embedded with links, or attached to servald.</summary>
    private sealed record HostSettings(List<IPEndPoint> Udp, List<IPAddress> Raw, string? Attach, LinkAddress DefaultRouter, LinkAddress RegisterWithRouter);

    private static bool TryHostSettings(
        ParseResult p, Option<string[]> udp, Option<string[]> raw, Option<string?> attach, Option<string?> router, bool listening, TextWriter error, out HostSettings settings)
    {
        settings = new HostSettings([], [], null, LinkAddress.None, LinkAddress.None);
        if (!LinkOptions.TryParse(p, udp, raw, attach, message => Usage(error, message), out var links))
        {
            return false;
        }

        var routerText = p.GetValue(router);
        if (links.Attach is not null)
        {
            if (routerText is not null)
            {
                Usage(error, "--router configures an embedded host; attached, servald's service table and registration apply.");
                return false;
            }

            settings = settings with { Attach = links.Attach };
            return true;
        }

        settings = new HostSettings(links.Udp, links.Raw, null, LinkAddress.None, LinkAddress.None);
        if (routerText is not null)
        {
            if (!LinkOptions.TryParseLinkAddress(routerText, out var routerAddress))
            {
                Usage(error, $"--router '{routerText}' is not ADDRESS[:PORT].");
                return false;
            }

            settings = settings with { DefaultRouter = routerAddress, RegisterWithRouter = listening ? routerAddress : LinkAddress.None };
        }

        return true;
    }

    private static async Task<int> RunAsync(HostSettings settings, CatSettings cat, Func<ServalHost, CatSettings, CancellationToken, Task<int>> session, CancellationToken ct)
    {
        ServalHost host;
        try
        {
            host = await StartHostAsync(settings, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Interrupted;
        }
        catch (Exception e) when (e is SocketException or PlatformNotSupportedException or IOException or ServalException or ArgumentException)
        {
            await cat.Error.WriteLineAsync($"serval-cat: cannot start the host: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        await using (host.ConfigureAwait(false))
        {
            return await session(host, cat, ct).ConfigureAwait(false);
        }
    }

    private static async Task<ServalHost> StartHostAsync(HostSettings settings, CancellationToken ct)
    {
        if (settings.Attach is { } socket)
        {
            return await ServalHost.AttachAsync(socket, ct).ConfigureAwait(false);
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
                    Name = "serval-cat",
                    Links = links,
                    DefaultRouter = settings.DefaultRouter,
                    RegisterWithRouter = settings.RegisterWithRouter,
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

    /// <summary>The exit code for a flow that failed with <paramref name="error"/>.</summary>
    internal static int ExitCodeOf(ServalError error) => error switch
    {
        ServalError.ConnectionRefused or ServalError.ServiceNotFound or ServalError.NoRoute => ExitCodes.Unreachable,
        ServalError.TimedOut => ExitCodes.TimedOut,
        _ => ExitCodes.Failure,
    };
}

/// <summary>What a session needs besides its host and service.</summary>
internal sealed record CatSettings(bool Datagram, int Size, TimeSpan? Wait, TimeSpan QuitAfter, Stream Input, Stream Output, TextWriter Error, bool InputIsRedirected);
