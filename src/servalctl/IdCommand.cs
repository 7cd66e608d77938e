using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Serval.Wire;

namespace Serval.Cli;

/// <summary>
/// <c>servalctl id NAME|ID [--json]</c>: the serviceID of a service name (or any serviceID form, normalised), without a
/// daemon. Prints the 64 hex digits (with <c>/bits</c> for a shorter prefix).
/// </summary>
internal static class IdCommand
{
    public static Command Create(CliContext context)
    {
        var text = new Argument<string>("NAME|SERVICEID") { Description = "a service name (shop.api), or a serviceID form, optionally /BITS" };
        var id = new Command("id", "print the serviceID of a service name (SHA-256 of the name, as the API does)") { text, context.Json };
        id.SetAction(p =>
        {
            var input = p.GetValue(text)!;
            if (!ServiceIdArgument.TryParse(input, out var prefix, out var name, out var why))
            {
                return context.Usage("id", $"malformed serviceID or name: {why}");
            }

            var hex = prefix.Id.ToString("x", CultureInfo.InvariantCulture);
            var bits = prefix.Length.ToString(CultureInfo.InvariantCulture);
            if (p.GetValue(context.Json))
            {
                context.PrintJson(new JsonObject
                {
                    ["input"] = input,
                    ["name"] = name,
                    ["id"] = hex,
                    ["bits"] = prefix.Length,
                });
                return 0;
            }

            context.Output.WriteLine(prefix.Length == ServiceId.Bits ? hex : $"{hex}/{bits}");
            return 0;
        });
        return id;
    }
}
