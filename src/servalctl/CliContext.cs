using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Serval.Daemon;
using Spectre.Console;

namespace Serval.Cli;

/// <summary>What every servalctl command shares: the output writers, the <c>--socket</c> and <c>--json</c> options.</summary>
internal sealed class CliContext(TextWriter output, TextWriter error)
{
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public TextWriter Output { get; } = output;

    public TextWriter Error { get; } = error;

    public Option<string> Socket { get; } = new("--socket")
    {
        Description = "servald's control socket (default: $XDG_RUNTIME_DIR/servald.sock, else /tmp/servald-UID.sock)",
        Recursive = true,
        HelpName = "PATH",
        DefaultValueFactory = _ => ControlSocketPath.Default,
    };

    public Option<bool> Json { get; } = new("--json") { Description = "print machine-readable JSON instead of a table", Recursive = true };

    /// <summary>Sends a request; on failure prints <c>servalctl VERB: message</c> and returns null (exit 1).</summary>
    public JsonObject? Request(ParseResult parse, string verb, JsonObject request)
    {
        try
        {
            return ControlClient.Send(parse.GetValue(Socket)!, request);
        }
        catch (ControlException e)
        {
            Error.WriteLine($"servalctl {verb}: {e.Message}");
            return null;
        }
    }

    /// <summary>Reports a usage error (exit 2).</summary>
    public int Usage(string verb, string message)
    {
        Error.WriteLine($"servalctl {verb}: {message}");
        return 2;
    }

    /// <summary>Prints the response without its <c>ok</c> member, indented.</summary>
    public void PrintJson(JsonObject response)
    {
        var copy = (JsonObject)response.DeepClone();
        copy.Remove("ok");
        Output.WriteLine(copy.ToJsonString(s_json));
    }

    /// <summary>A Spectre console writing to <see cref="Output"/> (no colours unless it is the real terminal).</summary>
    public IAnsiConsole Console()
    {
        var terminal = ReferenceEquals(Output, System.Console.Out) && !System.Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(Output),
        });
        if (!terminal)
        {
            console.Profile.Width = 200;
        }

        return console;
    }
}
