using System.CommandLine;
using System.Globalization;
using System.Net;
using Serval.Wire;

namespace Serval.Perf;

/// <summary>
/// <c>serval-perf server|client</c> (System.CommandLine). Exit codes: 0 success, 1 failure (cannot bind, cannot
/// connect, the test failed), 2 usage error.
/// </summary>
internal static class PerfCommandLine
{
    /// <summary>The service tested when none is given.</summary>
    public const string DefaultService = "serval-perf";

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var udp = new Option<string[]>("--udp")
        {
            Description = "a UDP-encapsulation link on ADDRESS[:PORT] (repeatable; port default: 54325 for the server, any for the client)",
            HelpName = "ADDRESS[:PORT]",
            Recursive = true,
        };
        var raw = new Option<string[]>("--raw")
        {
            Description = "a raw IP (protocol 144) link on ADDRESS (repeatable; needs root or CAP_NET_RAW)",
            HelpName = "ADDRESS",
            Recursive = true,
        };
        var service = new Option<string>("--service")
        {
            Description = $"the service tested: a name or a serviceID (default {DefaultService})",
            HelpName = "NAME|ID",
            Recursive = true,
            DefaultValueFactory = _ => DefaultService,
        };
        var json = new Option<bool>("--json") { Description = "print the results as JSON", Recursive = true };
        var noOffload = new Option<bool>("--no-offload") { Description = "do not use UDP GSO/GRO on the UDP links", Recursive = true };
        var noPacing = new Option<bool>("--no-pacing") { Description = "turn off the stream transport's pacing", Recursive = true };
        var buffer = new Option<string?>("--window")
        {
            Description = "stream send and receive buffer size per flow, e.g. 4M (default: the stack's 4 MiB)",
            HelpName = "BYTES",
            Recursive = true,
        };

        var oneOff = new Option<bool>("--one-off") { Description = "serve one test, then exit" };
        var register = new Option<string?>("--register")
        {
            Description = "register the service with this service router (ADDRESS[:PORT], port default 54325)",
            HelpName = "ADDRESS[:PORT]",
        };
        var weight = new Option<uint>("--weight") { Description = "weight of the registration (with --register; default 1)", DefaultValueFactory = _ => 1 };
        var serverTcp = new Option<string?>("--tcp")
        {
            Description = "instead of Serval: answer connect-rate probes over kernel TCP on ADDRESS:PORT",
            HelpName = "ADDRESS:PORT",
        };
        var server = new Command("server", "serve tests until Ctrl-C (or one test with --one-off)") { oneOff, register, weight, serverTcp };

        var peer = new Option<string>("--server", "-c")
        {
            Description = "the server's link address: ADDRESS:PORT over UDP, ADDRESS alone over raw IP when a --raw link is given (else UDP port 54325)",
            HelpName = "ADDRESS[:PORT]",
            Required = true,
        };
        var advisory = new Option<bool>("--advisory") { Description = "pass the server's address as the connection's advisory address instead of adding a FORWARD rule" };
        var mode = new Option<string>("--mode") { Description = "stream (SAL + TCP) or datagram (connected SAL + UDP flows)", DefaultValueFactory = _ => "stream" };
        mode.AcceptOnlyFromAmong("stream", "datagram");
        var duration = new Option<double?>("--duration", "-t") { Description = "seconds to send (default 10; at most 3600)", HelpName = "SECONDS" };
        var bytes = new Option<string?>("--bytes", "-n") { Description = "bytes to send in total instead of a duration, e.g. 1G", HelpName = "BYTES" };
        var parallel = new Option<int>("--parallel", "-P") { Description = "parallel flows (1 to 64)", DefaultValueFactory = _ => 1 };
        var size = new Option<int>("--size", "-l") { Description = "datagram size in datagram mode (default 1400)", DefaultValueFactory = _ => 1400 };
        var interval = new Option<double?>("--interval", "-i") { Description = "print the senders' flow statistics every SECONDS to standard error (0.05 to 60)", HelpName = "SECONDS" };
        var client = new Command("client", "run one test against a server") { peer, advisory, mode, duration, bytes, parallel, size, interval };

        var ratePeer = new Option<string?>("--server", "-c")
        {
            Description = "Serval: where the service's SYNs go (a service router or the server): ADDRESS:PORT over UDP, ADDRESS alone over raw IP when a --raw link is given",
            HelpName = "ADDRESS[:PORT]",
        };
        var rateTcp = new Option<string?>("--tcp") { Description = "instead of Serval: connect over kernel TCP to ADDRESS:PORT", HelpName = "ADDRESS:PORT" };
        var rateAdvisory = new Option<bool>("--advisory") { Description = "pass the --server address as the connections' advisory address instead of adding a FORWARD rule" };
        var rateDuration = new Option<double>("--duration", "-t") { Description = "seconds to run (default 10; at most 3600)", HelpName = "SECONDS", DefaultValueFactory = _ => 10 };
        var rateParallel = new Option<int>("--parallel", "-P") { Description = "concurrent connect loops (1 to 1024, default 64)", DefaultValueFactory = _ => 64 };
        var echo = new Option<bool>("--echo") { Description = "after connecting, send one byte and wait for the server's echo before closing" };
        var count = new Option<long?>("--count") { Description = "stop after this many connections in all (default: only the duration)", HelpName = "N" };
        var connectTimeout = new Option<double>("--timeout") { Description = "seconds before an attempt counts as failed (default 10)", HelpName = "SECONDS", DefaultValueFactory = _ => 10 };
        var warmup = new Option<double>("--warmup") { Description = "seconds of unrecorded connections before the measured duration (default 0; at most 60)", HelpName = "SECONDS" };
        var connectRate = new Command("connect-rate", "open and close connections in parallel loops for a duration; connections per second, latency percentiles, failures by error")
        {
            ratePeer, rateTcp, rateAdvisory, rateDuration, rateParallel, echo, count, connectTimeout, warmup,
        };

        var blastBind = new Option<string?>("--bind") { Description = "local ADDRESS:PORT (receive: required; send: optional)", HelpName = "ADDRESS:PORT" };
        var blastTo = new Option<string>("--to") { Description = "the receiver's ADDRESS:PORT", HelpName = "ADDRESS:PORT", Required = true };
        var blastSeconds = new Option<double>("--duration", "-t") { Description = "seconds (default 5; at most 600); the receiver counts from its first datagram", HelpName = "SECONDS", DefaultValueFactory = _ => 5 };
        var blastSize = new Option<int>("--size", "-l") { Description = "UDP payload per datagram (default 1472: a 1500-byte IPv4 MTU)", DefaultValueFactory = _ => 1472 };
        var blastReceive = new Command("receive", "count what arrives (UDP_GRO) and print udp-blast: gbps=<n> bytes=<n> seconds=<n>") { blastBind, blastSeconds };
        var blastSend = new Command("send", "send datagrams as fast as one thread can (UDP_SEGMENT, 64 KiB per call)") { blastBind, blastTo, blastSeconds, blastSize };
        var udpBlast = new Command("udp-blast", "baseline without Serval: a plain .NET UDP socket with segmentation offload") { blastReceive, blastSend };
        blastSeconds.Validators.Add(r =>
        {
            if (r.GetValue(blastSeconds) is var d && (!(d > 0) || d > 600))
            {
                r.AddError("--duration must be more than 0 and at most 600 seconds.");
            }
        });
        blastSize.Validators.Add(r =>
        {
            if (r.GetValue(blastSize) is < 1 or > 65_000)
            {
                r.AddError("--size must be 1 to 65000 bytes.");
            }
        });
        blastReceive.SetAction(p =>
        {
            if (p.GetValue(blastBind) is not { } text || !TryParseEndPoint(text, 0, out var bind) || bind.Port == 0)
            {
                return Usage(error, "udp-blast receive needs --bind ADDRESS:PORT.");
            }

            return PerfUdpBlast.Receive(bind, p.GetValue(blastSeconds), output, error);
        });
        blastSend.SetAction(p =>
        {
            if (!TryParseEndPoint(p.GetValue(blastTo)!, 0, out var to) || to.Port == 0)
            {
                return Usage(error, "udp-blast send needs --to ADDRESS:PORT.");
            }

            IPEndPoint? bind = null;
            if (p.GetValue(blastBind) is { } text && !TryParseEndPoint(text, 0, out bind))
            {
                return Usage(error, "--bind must be ADDRESS[:PORT].");
            }

            return PerfUdpBlast.Send(bind, to, p.GetValue(blastSize), p.GetValue(blastSeconds), error);
        });

        var root = new RootCommand("serval-perf: measure Serval stream and datagram throughput between two hosts (like iperf).")
        {
            udp, raw, service, json, noOffload, noPacing, buffer, server, client, connectRate, udpBlast,
        };

        rateDuration.Validators.Add(r =>
        {
            if (r.GetValue(rateDuration) is var d && (!(d > 0) || d > 3600))
            {
                r.AddError("--duration must be more than 0 and at most 3600 seconds.");
            }
        });
        rateParallel.Validators.Add(r =>
        {
            if (r.GetValue(rateParallel) is < 1 or > 1024)
            {
                r.AddError("--parallel must be 1 to 1024.");
            }
        });
        count.Validators.Add(r =>
        {
            if (r.GetValue(count) is < 1)
            {
                r.AddError("--count must be at least 1.");
            }
        });
        connectTimeout.Validators.Add(r =>
        {
            if (r.GetValue(connectTimeout) is var t && (!(t >= 0.01) || t > 600))
            {
                r.AddError("--timeout must be 0.01 to 600 seconds.");
            }
        });
        warmup.Validators.Add(r =>
        {
            if (r.GetValue(warmup) is var w && (!(w >= 0) || w > 60))
            {
                r.AddError("--warmup must be 0 to 60 seconds.");
            }
        });
        weight.Validators.Add(r =>
        {
            if (r.GetValue(weight) is 0 or > int.MaxValue)
            {
                r.AddError("--weight must be 1 to 2147483647.");
            }
        });

        duration.Validators.Add(r =>
        {
            if (r.GetValue(duration) is { } d && (!(d > 0) || d > 3600))
            {
                r.AddError("--duration must be more than 0 and at most 3600 seconds.");
            }
        });
        parallel.Validators.Add(r =>
        {
            if (r.GetValue(parallel) is < 1 or > 64)
            {
                r.AddError("--parallel must be 1 to 64.");
            }
        });
        size.Validators.Add(r =>
        {
            if (r.GetValue(size) is < PerfProtocol.DataHeaderLength or > 65_000)
            {
                r.AddError($"--size must be {PerfProtocol.DataHeaderLength} to 65000 bytes.");
            }
        });
        interval.Validators.Add(r =>
        {
            if (r.GetValue(interval) is { } i && (!(i >= 0.05) || i > 60))
            {
                r.AddError("--interval must be 0.05 to 60 seconds.");
            }
        });
        client.Validators.Add(r =>
        {
            if (r.GetValue(duration) is not null && r.GetValue(bytes) is not null)
            {
                r.AddError("give --duration or --bytes, not both.");
            }
        });

        server.SetAction(async (p, ct) =>
        {
            if (p.GetValue(serverTcp) is { } tcpText)
            {
                if (!TryParseTcp(tcpText, p, udp, raw, register, out var tcpEndPoint, out var tcpWhy))
                {
                    return Usage(error, tcpWhy);
                }

                return await PerfTcpServer.RunAsync(tcpEndPoint, error, ct).ConfigureAwait(false);
            }

            if (!TryCommon(p, udp, raw, service, noOffload, buffer, isServer: true, error, out var common))
            {
                return 2;
            }

            if (p.GetValue(register) is { } routerText)
            {
                if (!TryParseEndPoint(routerText, ServalInfo.DefaultUdpPort, out var router) || router.Address.Equals(IPAddress.Any) || router.Address.Equals(IPAddress.IPv6Any) || router.Port == 0)
                {
                    return Usage(error, $"--register '{routerText}' is not a router's ADDRESS[:PORT].");
                }

                if (!common.UdpLinks.Any(l => l.AddressFamily == router.AddressFamily))
                {
                    return Usage(error, $"--register {routerText} needs a --udp link of its address family.");
                }

                common = common with { Register = LinkAddress.FromIPAddress(router.Address, router.Port), Weight = p.GetValue(weight) };
            }

            return await PerfServer.RunAsync(common with { Json = p.GetValue(json), Pacing = !p.GetValue(noPacing) }, p.GetValue(oneOff), output, error, ct).ConfigureAwait(false);
        });

        connectRate.SetAction(async (p, ct) =>
        {
            var settings = new ConnectRateSettings
            {
                Json = p.GetValue(json),
                Parallel = p.GetValue(rateParallel),
                Duration = TimeSpan.FromSeconds(p.GetValue(rateDuration)),
                Echo = p.GetValue(echo),
                MaxConnections = p.GetValue(count) ?? 10_000_000,
                ConnectTimeout = TimeSpan.FromSeconds(p.GetValue(connectTimeout)),
                Warmup = TimeSpan.FromSeconds(p.GetValue(warmup)),
            };
            if (p.GetValue(rateTcp) is { } tcpText)
            {
                if (p.GetValue(ratePeer) is not null || p.GetValue(rateAdvisory))
                {
                    return Usage(error, "--tcp takes the place of --server and --advisory.");
                }

                if (!TryParseTcp(tcpText, p, udp, raw, null, out var tcpEndPoint, out var tcpWhy))
                {
                    return Usage(error, tcpWhy);
                }

                return await PerfConnectRate.RunAsync(settings with { Tcp = tcpEndPoint }, output, error, ct).ConfigureAwait(false);
            }

            if (p.GetValue(ratePeer) is not { } peerText)
            {
                return Usage(error, "give --server ADDRESS[:PORT] (Serval) or --tcp ADDRESS:PORT (kernel TCP).");
            }

            if (!TryCommon(p, udp, raw, service, noOffload, buffer, isServer: false, error, out var common))
            {
                return 2;
            }

            if (!TryParsePeer(peerText, common, out var peerAddress, out var linkIndex, out var why))
            {
                return Usage(error, why);
            }

            settings = settings with
            {
                Common = common with { Pacing = !p.GetValue(noPacing) },
                Peer = peerAddress,
                PeerLink = linkIndex,
                Advisory = p.GetValue(rateAdvisory),
            };
            return await PerfConnectRate.RunAsync(settings, output, error, ct).ConfigureAwait(false);
        });

        client.SetAction(async (p, ct) =>
        {
            if (!TryCommon(p, udp, raw, service, noOffload, buffer, isServer: false, error, out var common))
            {
                return 2;
            }

            long? total = null;
            if (p.GetValue(bytes) is { } text)
            {
                if (!TryParseSize(text, out var n) || n <= 0 || n > (1L << 40))
                {
                    return Usage(error, $"--bytes '{text}' is not a byte count of 1 to 1T (suffixes K, M, G, T).");
                }

                total = n;
            }

            if (!TryParsePeer(p.GetValue(peer)!, common, out var peerAddress, out var linkIndex, out var why))
            {
                return Usage(error, why);
            }

            var settings = new ClientSettings
            {
                Common = common with { Json = p.GetValue(json), Pacing = !p.GetValue(noPacing) },
                Peer = peerAddress,
                PeerLink = linkIndex,
                Advisory = p.GetValue(advisory),
                Datagram = p.GetValue(mode) == "datagram",
                Duration = TimeSpan.FromSeconds(p.GetValue(duration) ?? 10),
                Bytes = total,
                Parallel = p.GetValue(parallel),
                DatagramSize = p.GetValue(size),
                Interval = p.GetValue(interval) is { } i ? TimeSpan.FromSeconds(i) : null,
            };
            return await PerfClient.RunAsync(settings, output, error, ct).ConfigureAwait(false);
        });

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors)
            {
                error.WriteLine($"serval-perf: {e.Message}");
            }

            error.WriteLine("Run 'serval-perf --help' for usage.");
            return 2;
        }

        if (parse.CommandResult.Command == root && parse.Action is null)
        {
            // No command, and no --help or --version either (their actions print the usage and the version).
            error.WriteLine("serval-perf: give a command: server, client, connect-rate or udp-blast. Run 'serval-perf --help' for usage.");
            return 2;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }).ConfigureAwait(false);
    }

    private static int Usage(TextWriter error, string message)
    {
        error.WriteLine($"serval-perf: {message}");
        return 2;
    }

    private static bool TryCommon(
        ParseResult p,
        Option<string[]> udp,
        Option<string[]> raw,
        Option<string> service,
        Option<bool> noOffload,
        Option<string?> buffer,
        bool isServer,
        TextWriter error,
        out CommonSettings settings)
    {
        settings = null!;
        var udpLinks = new List<IPEndPoint>();
        foreach (var text in p.GetValue(udp) ?? [])
        {
            if (!TryParseEndPoint(text, isServer ? ServalInfo.DefaultUdpPort : 0, out var endPoint) || endPoint.Address.Equals(IPAddress.Any) || endPoint.Address.Equals(IPAddress.IPv6Any))
            {
                Usage(error, $"--udp '{text}' is not a specific ADDRESS[:PORT].");
                return false;
            }

            udpLinks.Add(endPoint);
        }

        var rawLinks = new List<IPAddress>();
        foreach (var text in p.GetValue(raw) ?? [])
        {
            if (!IPAddress.TryParse(text, out var address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
            {
                Usage(error, $"--raw '{text}' is not a specific IP address.");
                return false;
            }

            rawLinks.Add(address);
        }

        if (udpLinks.Count + rawLinks.Count == 0)
        {
            Usage(error, "give at least one link: --udp ADDRESS[:PORT] or --raw ADDRESS.");
            return false;
        }

        var serviceText = p.GetValue(service)!;
        if (!ServiceEndPoint.TryParse(serviceText, out var endPointOfService))
        {
            Usage(error, $"--service '{serviceText}' is neither a service name nor a serviceID.");
            return false;
        }

        int? window = null;
        if (p.GetValue(buffer) is { } w)
        {
            if (!TryParseSize(w, out var n) || n < 4096 || n > (1 << 30))
            {
                Usage(error, $"--window '{w}' must be 4K to 1G.");
                return false;
            }

            window = (int)n;
        }

        settings = new CommonSettings
        {
            UdpLinks = udpLinks,
            RawLinks = rawLinks,
            Service = endPointOfService.Service,
            ServiceText = serviceText,
            Offload = !p.GetValue(noOffload),
            Window = window,
        };
        return true;
    }

    /// <summary>A kernel TCP ADDRESS:PORT, given without Serval links (nor <paramref name="register"/>).</summary>
    private static bool TryParseTcp(string text, ParseResult p, Option<string[]> udp, Option<string[]> raw, Option<string?>? register, out IPEndPoint endPoint, out string why)
    {
        why = "";
        if (!TryParseEndPoint(text, 0, out endPoint, out var hasPort) || !hasPort || endPoint.Port == 0)
        {
            why = $"--tcp '{text}' is not an ADDRESS:PORT.";
            return false;
        }

        if ((p.GetValue(udp)?.Length ?? 0) + (p.GetValue(raw)?.Length ?? 0) > 0 || (register is not null && p.GetValue(register) is not null))
        {
            why = "--tcp runs over kernel TCP: give no --udp, --raw or --register with it.";
            return false;
        }

        return true;
    }

    /// <summary>The peer's link address and the (1-based) link it is reached through.</summary>
    private static bool TryParsePeer(string text, CommonSettings common, out LinkAddress address, out int linkIndex, out string why)
    {
        address = default;
        linkIndex = 0;
        why = "";
        if (!TryParseEndPoint(text, 0, out var withPort, out var hasPort) || withPort.Address.Equals(IPAddress.Any) || withPort.Address.Equals(IPAddress.IPv6Any)
            || (hasPort && withPort.Port == 0))
        {
            why = $"--server '{text}' is not an ADDRESS[:PORT].";
            return false;
        }

        var ip = withPort.Address;
        if (!hasPort)
        {
            var rawIndex = common.RawLinks.FindIndex(a => a.AddressFamily == ip.AddressFamily);
            if (rawIndex >= 0)
            {
                address = LinkAddress.FromIPAddress(ip);
                linkIndex = common.UdpLinks.Count + rawIndex + 1;
                return true;
            }
        }

        var udpIndex = common.UdpLinks.FindIndex(e => e.AddressFamily == ip.AddressFamily);
        if (udpIndex < 0)
        {
            why = $"no {(hasPort ? "UDP" : "UDP or raw IP")} link of the address family of --server {text}.";
            return false;
        }

        address = LinkAddress.FromIPAddress(ip, hasPort ? withPort.Port : ServalInfo.DefaultUdpPort);
        linkIndex = udpIndex + 1;
        return true;
    }

    private static bool TryParseEndPoint(string text, int defaultPort, out IPEndPoint endPoint) =>
        TryParseEndPoint(text, defaultPort, out endPoint, out _);

    /// <summary>ADDRESS, ADDRESS:PORT, IPV6, [IPV6] or [IPV6]:PORT.</summary>
    private static bool TryParseEndPoint(string text, int defaultPort, out IPEndPoint endPoint, out bool hasPort)
    {
        endPoint = null!;
        hasPort = text.StartsWith('[') ? text.Contains("]:", StringComparison.Ordinal) : text.Count(c => c == ':') == 1;
        if (hasPort)
        {
            if (!IPEndPoint.TryParse(text, out var parsed))
            {
                return false;
            }

            endPoint = parsed;
            return true;
        }

        if (!IPAddress.TryParse(text.TrimStart('[').TrimEnd(']'), out var address))
        {
            return false;
        }

        endPoint = new IPEndPoint(address, Math.Max(0, defaultPort));
        return true;
    }

    /// <summary>Parses 1500, 64K, 4M, 1G, 1T (powers of 1024).</summary>
    public static bool TryParseSize(string text, out long value)
    {
        value = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var multiplier = char.ToUpperInvariant(text[^1]) switch
        {
            'K' => 1L << 10,
            'M' => 1L << 20,
            'G' => 1L << 30,
            'T' => 1L << 40,
            _ => 1L,
        };
        var digits = multiplier == 1 ? text : text[..^1];
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > long.MaxValue / multiplier)
        {
            return false;
        }

        value = n * multiplier;
        return true;
    }
}
