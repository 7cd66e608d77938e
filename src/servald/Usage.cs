using System.Reflection;

namespace Serval.Daemon;

/// <summary>servald's own command-line switches (<c>--help</c>, <c>--version</c>); everything else is configuration.</summary>
internal static class Usage
{
    public const string Text = """
        Usage: servald [--help] [--version] [--Serval:KEY=VALUE ...]

        Runs one Serval host (or service router) with a control socket for servalctl. Stops on SIGTERM or Ctrl+C.

        Options:
          -h, --help              print this help and exit
          --version               print the version and exit
          --Serval:KEY=VALUE      set a configuration key, e.g. --Serval:Mode=ServiceRouter
                                  --Serval:Udp:0:Address=10.0.0.1 --Serval:Udp:0:Port=54325

        Configuration (section Serval; later sources win):
          appsettings.json        next to the servald binary (a commented sample ships there), then in the working
                                  directory (then appsettings.ENV.json, ENV from DOTNET_ENVIRONMENT)
          environment variables   Serval__KEY, e.g. Serval__Mode=ServiceRouter, Serval__Router__KeyFile=/etc/serval/key
          command line            --Serval:KEY=VALUE
        Keys: Name, Mode (Host|ServiceRouter), Udp (list of Address, Port), LinkPolicies (list of Kind, Port, IPv4,
          IPv6, LinkLocal, Loopback, Interfaces: links that follow the addresses), RawIp, ControlSocket, TimeWait,
          RegisterWithRouter, RouterDiscovery, MetricsUrl, Otlp:*, Registration:*, Router:*, Resolver:* (see docs/servald.md).
          Unknown keys, values that do not convert and invalid settings are refused at start. Logging:* configures the
          console log.

        Exit codes:
          0   stopped by SIGTERM/Ctrl+C, or --help / --version
          1   invalid configuration, or start-up failed (a link or the control socket cannot be bound);
              one line on stderr says why
        """;

    /// <summary>Whether <paramref name="args"/> asks for the help text.</summary>
    public static bool IsHelp(IReadOnlyList<string> args) => args.Any(a => a is "--help" or "-h" or "-?" or "/?" or "/help");

    /// <summary>Whether <paramref name="args"/> asks for the version.</summary>
    public static bool IsVersion(IReadOnlyList<string> args) => args.Any(a => a is "--version" or "/version");

    /// <summary>The assembly's informational version (e.g. <c>1.0.0+commit</c>).</summary>
    public static string Version =>
        typeof(Usage).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(Usage).Assembly.GetName().Version?.ToString()
        ?? "unknown";
}
