using System.CommandLine;
using System.Globalization;
using Serval.Wire;

namespace Serval.Cli;

/// <summary>
/// servalctl's verbs (System.CommandLine), mirroring the reference <c>serv</c> tool: <c>service add|del|mod|list</c>,
/// <c>flow list</c>, <c>stats</c>, <c>migrate flow|interface|service</c>, <c>router registrations|drain|undrain</c>, plus <c>decode</c> and <c>id</c>.
/// Exit codes: 0 success, 1 failure (daemon error, daemon not running), 2 usage error.
/// </summary>
internal static class CommandLine
{
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var context = new CliContext(output, error);
        var root = new RootCommand("Control a Serval host daemon (servald) and decode Serval captures.");
        root.Add(context.Socket);
        root.Add(ServiceCommands.Create(context));
        root.Add(InspectCommands.CreateFlow(context));
        root.Add(InspectCommands.CreateStats(context));
        root.Add(MigrateCommands.Create(context));
        root.Add(RouterCommands.Create(context));
        root.Add(CreateDecode(context));
        root.Add(IdCommand.Create(context));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var line in Suggestions.Lines(parse))
            {
                error.WriteLine($"servalctl: {line}");
            }

            error.WriteLine("Run 'servalctl --help' for usage.");
            return 2;
        }

        return parse.Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    private static Command CreateDecode(CliContext context)
    {
        var file = new Argument<string?>("FILE") { Description = "pcap or pcapng file (default: an embedded sample)", Arity = ArgumentArity.ZeroOrOne };
        var json = new Option<bool>("--json") { Description = "print one JSON object per packet (JSON Lines), every field" };
        var hex = new Option<bool>("--hex") { Description = "print a hex dump of each SAL packet alongside (with --json: a \"hex\" member)" };
        var flow = new Option<string[]>("--flow")
        {
            Description = "only packets whose source or destination flowID is ID (decimal or 0x hex; repeat for several)",
            HelpName = "ID",
            Arity = ArgumentArity.OneOrMore,
        };
        var service = new Option<string>("--service")
        {
            Description = "only packets naming this serviceID (ID[/BITS] as in service add, or a name, hashed as ServiceId.FromName) and the rest of the flows they open",
            HelpName = "ID-or-name",
        };
        var decode = new Command("decode", "print every Serval packet of a pcap/pcapng capture") { file, json, hex, flow, service };
        decode.SetAction(p =>
        {
            var path = p.GetValue(file);
            if (path is not null && path.StartsWith('-') && !File.Exists(path))
            {
                var names = Suggestions.For(path, decode, []);
                return context.Usage("decode", $"unknown option '{path}'{(names.Count > 0 ? $"; did you mean {string.Join(" or ", names.Select(n => $"'{n}'"))}?" : string.Empty)}");
            }

            var flows = new List<uint>();
            foreach (var text in p.GetValue(flow) ?? [])
            {
                if (!TryParseFlowId(text, out var id))
                {
                    return context.Usage("decode", $"malformed flowID '{text}': expected a 32-bit decimal or 0x hex number");
                }

                flows.Add(id);
            }

            ServicePrefix? prefix = null;
            if (p.GetValue(service) is { } serviceText)
            {
                if (!TryParseService(serviceText, out var parsed, out var why))
                {
                    return context.Usage("decode", $"malformed serviceID: {why}");
                }

                prefix = parsed;
            }

            var options = new DecodeOptions(p.GetValue(json), p.GetValue(hex), flows, prefix);
            return DecodeCommand.Run(path, options, context.Output, context.Error);
        });
        return decode;
    }

    /// <summary>A flowID as <c>flow list</c> shows it: decimal or <c>0x</c> hex, 32 bits.</summary>
    internal static bool TryParseFlowId(string text, out uint id) =>
        text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? uint.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out id)
            : uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out id);

    /// <summary>A serviceID, prefix or service name, as <c>service add</c> takes it (<see cref="ServiceIdArgument"/>).</summary>
    internal static bool TryParseService(string text, out ServicePrefix prefix, out string reason) =>
        ServiceIdArgument.TryParse(text, out prefix, out reason);
}
