namespace Serval.Cli;

/// <summary>Dispatches servalctl verbs. Exit codes: 0 success, 1 failure, 2 usage error.</summary>
internal static class CommandLine
{
    private const string Usage = """
        usage: servalctl <command> [arguments]

        commands:
          decode [FILE]   print every Serval packet of a pcap/pcapng capture (default: an embedded sample)
          help            show this text
        """;

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
        {
            (args.Length == 0 ? error : output).WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        switch (args[0])
        {
            case "decode":
                if (args.Length > 2)
                {
                    error.WriteLine("servalctl decode: expected at most one FILE");
                    return 2;
                }

                return DecodeCommand.Run(args.Length == 2 ? args[1] : null, output, error);
            default:
                error.WriteLine($"servalctl: unknown command '{args[0]}'");
                error.WriteLine(Usage);
                return 2;
        }
    }
}
