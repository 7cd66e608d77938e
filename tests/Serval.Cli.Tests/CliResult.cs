using System.Text.Json.Nodes;

namespace Serval.Cli.Tests;

/// <summary>The exit code and captured output of one in-process servalctl run.</summary>
public sealed record CliResult(int ExitCode, string Output, string Error)
{
    public static CliResult Run(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = CommandLine.Run(args, output, error);
        return new CliResult(code, output.ToString(), error.ToString());
    }

    public JsonObject Json => JsonNode.Parse(Output)!.AsObject();

    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Error}";
}
