using System.CommandLine;

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
            foreach (var e in parse.Errors)
            {
                error.WriteLine($"servalctl: {e.Message}");
            }

            error.WriteLine("Run 'servalctl --help' for usage.");
            return 2;
        }

        return parse.Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    private static Command CreateDecode(CliContext context)
    {
        var file = new Argument<string?>("FILE") { Description = "pcap or pcapng file (default: an embedded sample)", Arity = ArgumentArity.ZeroOrOne };
        var decode = new Command("decode", "print every Serval packet of a pcap/pcapng capture") { file };
        decode.SetAction(p => DecodeCommand.Run(p.GetValue(file), context.Output, context.Error));
        return decode;
    }
}
