using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Cli;

/// <summary>
/// <c>servalctl id NAME|ID [--json]</c>: the serviceID of a service name (or any serviceID form, normalised), without a
/// daemon. Prints the 64 hex digits (with <c>/bits</c> for a shorter prefix). <c>servalctl id new --prefix P --out FILE</c>
/// creates the key of a self-certifying serviceID; <c>servalctl id show FILE</c> prints a key file's serviceID
/// (docs/security.md).
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
        id.Add(CreateNew(context));
        id.Add(CreateShow(context));
        return id;
    }

    private static Command CreateNew(CliContext context)
    {
        var prefixOption = new Option<string>("--prefix") { Description = "the serviceID prefix, ID/BITS with at most 128 bits (default: none, /0)" };
        var outOption = new Option<string>("--out") { Description = "the key file to create (mode 0600; never overwritten)", Required = true };
        var command = new Command("new", "create the key of a self-certifying serviceID and write it to a key file") { prefixOption, outOption, context.Json };
        command.SetAction(p =>
        {
            var prefix = ServicePrefix.Default;
            if (p.GetValue(prefixOption) is { } text && !ServicePrefix.TryParse(text, out prefix, out var why))
            {
                return context.Usage("id new", $"malformed prefix: {why}");
            }

            if (prefix.Length > ServiceId.MaxSelfCertifyingPrefixLength)
            {
                return context.Usage("id new", $"the prefix has {prefix.Length} bits; a self-certifying serviceID keeps at least 128 bits for the key's hash (at most {ServiceId.MaxSelfCertifyingPrefixLength})");
            }

            var path = p.GetValue(outOption)!;
            ServiceKey key;
            try
            {
                key = ServiceKeyFile.Create(path, prefix);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                context.Error.WriteLine($"servalctl id new: cannot create {path}: {e.Message}");
                return 1;
            }

            using (key)
            {
                Print(context, p.GetValue(context.Json), key, path);
            }

            return 0;
        });
        return command;
    }

    private static Command CreateShow(CliContext context)
    {
        var file = new Argument<string>("FILE") { Description = "a key file made by servalctl id new" };
        var command = new Command("show", "print the self-certifying serviceID of a key file (and check the file)") { file, context.Json };
        command.SetAction(p =>
        {
            var path = p.GetValue(file)!;
            try
            {
                using var key = ServiceKeyFile.Load(path);
                Print(context, p.GetValue(context.Json), key, path);
                return 0;
            }
            catch (ServiceKeyFileException e)
            {
                context.Error.WriteLine($"servalctl id show: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    private static void Print(CliContext context, bool json, ServiceKey key, string path)
    {
        var id = key.ServiceId.ToString("x", CultureInfo.InvariantCulture);
        if (json)
        {
            context.PrintJson(new JsonObject
            {
                ["file"] = path,
                ["id"] = id,
                ["prefix"] = key.Prefix.Id.ToString("x", CultureInfo.InvariantCulture),
                ["prefix_bits"] = key.Prefix.Length,
                ["public_key"] = Convert.ToHexStringLower(key.PublicKey),
            });
            return;
        }

        context.Output.WriteLine(id);
    }
}
