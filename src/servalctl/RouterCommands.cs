using System.CommandLine;
using System.Text.Json.Nodes;
using Serval.Wire;
using Spectre.Console;

namespace Serval.Cli;

/// <summary>
/// <c>servalctl router registrations</c> (what a service router's controller holds) and
/// <c>servalctl router drain|undrain HOST [SERVICEID[:BITS]]</c> (take a registered host, or one of its prefixes, out
/// of rotation at the router and back).
/// </summary>
internal static class RouterCommands
{
    public static Command Create(CliContext context)
    {
        var router = new Command("router", "inspect and steer a service router's registrations");
        var list = new Command("registrations", "list the registrations the router holds, with state and lease") { context.Json };
        list.SetAction(p => List(context, p));
        router.Add(list);
        var status = new Command("status", "the router's health: in a fleet, whether it is in step with the registry (ok) or degraded") { context.Json };
        status.SetAction(p => Status(context, p));
        router.Add(status);
        router.Add(CreateDrain(context, "drain", "stop sending new connections to a registered host (or one of its prefixes)"));
        router.Add(CreateDrain(context, "undrain", "lift a drain set with 'router drain'"));
        return router;
    }

    private static Command CreateDrain(CliContext context, string verb, string description)
    {
        var host = new Argument<string>("HOST") { Description = "the registered host's address[:port] (no port: every port)" };
        var id = new Argument<string?>("SERVICEID") { Description = "only this prefix (default: all of the host's prefixes)", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command(verb, description) { host, id };
        command.SetAction(p =>
        {
            var name = $"router {verb}";
            var hostText = p.GetValue(host)!;
            try
            {
                _ = LinkAddress.Parse(hostText);
            }
            catch (FormatException e)
            {
                return context.Usage(name, $"malformed host address '{hostText}': {e.Message}");
            }

            var request = new JsonObject { ["op"] = $"router.{verb}", ["host"] = hostText };
            string? shown = null;
            if (p.GetValue(id) is { } idText)
            {
                if (!ServiceIdArgument.TryParse(idText, out var prefix, out var why))
                {
                    return context.Usage(name, $"malformed serviceID: {why}");
                }

                request["prefix"] = prefix.ToString();
                shown = ServiceIdArgument.Format(prefix);
            }

            if (context.Request(p, name, request) is not { } response)
            {
                return 1;
            }

            var changed = response["changed"]?.GetValue<bool>() ?? true;
            context.Output.WriteLine($"{verb} {hostText}{(shown is null ? string.Empty : " " + shown)}: {(changed ? "ok" : "already drained")}");
            return 0;
        });
        return command;
    }

    private static int Status(CliContext context, ParseResult p)
    {
        if (context.Request(p, "router status", new JsonObject { ["op"] = "router.status" }) is not { } response)
        {
            return 1;
        }

        if (p.GetValue(context.Json))
        {
            context.PrintJson(response);
            return 0;
        }

        context.Output.WriteLine($"state {(string?)response["state"]}, epoch {(string?)response["epoch"]}, {ServiceCommands.Num(response["registrations"])} registrations held here");
        if (response["fleet"] is JsonObject f)
        {
            context.Output.WriteLine(
                $"fleet: router {(string?)f["name"]}, {ServiceCommands.Num(f["registrations"])} registrations, revision {ServiceCommands.Num(f["revision"])} (registry {ServiceCommands.Num(f["registryRevision"])}), " +
                $"watch lag {ServiceCommands.Num(f["watchLagMs"])} ms (max {ServiceCommands.Num(f["maxWatchLagMs"])}), errors {ServiceCommands.Num(f["errors"])}, snapshots {ServiceCommands.Num(f["snapshots"])}");
            if ((string?)f["lastError"] is { } error)
            {
                context.Output.WriteLine($"last registry error: {error}");
            }
        }
        else
        {
            context.Output.WriteLine("not in a fleet: registrations are kept in this router's memory");
        }

        return 0;
    }

    private static int List(CliContext context, ParseResult p)
    {
        if (context.Request(p, "router registrations", new JsonObject { ["op"] = "router.registrations" }) is not { } response)
        {
            return 1;
        }

        if (p.GetValue(context.Json))
        {
            context.PrintJson(response);
            return 0;
        }

        var registrations = response["registrations"]!.AsArray();
        context.Output.WriteLine($"epoch {(string?)response["epoch"]}, {registrations.Count} registrations");
        var table = new Table().AddColumns("prefix", "host", "if", "weight", "state", "lease ms", "transports", "sender");
        foreach (var r in registrations)
        {
            var prefix = ServicePrefix.Parse((string)r!["prefix"]!);
            table.AddRow(
                Markup.Escape(ServiceDisplay.Show(prefix, (string?)r["name"])),
                Markup.Escape((string?)r["host"] ?? string.Empty),
                ServiceCommands.Num(r["interface"]),
                ServiceCommands.Num(r["weight"]),
                Markup.Escape((string?)r["state"] ?? string.Empty),
                ServiceCommands.Num(r["leaseRemainingMs"]),
                Markup.Escape((string?)r["transports"] ?? string.Empty),
                Markup.Escape((string?)r["sender"] ?? string.Empty));
        }

        context.Console().Write(table);
        if (response["fleet"] is JsonObject fleet)
        {
            var all = fleet["registrations"]!.AsArray();
            context.Output.WriteLine(
                $"fleet view (router {(string?)fleet["name"]}, revision {ServiceCommands.Num(fleet["revision"])}{((bool?)fleet["degraded"] == true ? ", DEGRADED" : string.Empty)}): {all.Count} registrations");
            var ft = new Table().AddColumns("prefix", "host", "weight", "state", "accepted by", "lease ms", "sender");
            foreach (var r in all)
            {
                ft.AddRow(
                    Markup.Escape(ServiceIdArgument.Format(ServicePrefix.Parse((string)r!["prefix"]!))),
                    Markup.Escape((string?)r["host"] ?? string.Empty),
                    ServiceCommands.Num(r["weight"]),
                    Markup.Escape((string?)r["state"] ?? string.Empty),
                    Markup.Escape((string?)r["router"] ?? string.Empty),
                    ServiceCommands.Num(r["leaseMs"]),
                    Markup.Escape((string?)r["sender"] ?? string.Empty));
            }

            context.Console().Write(ft);
        }

        foreach (var d in response["drains"]!.AsArray())
        {
            var prefix = (string?)d!["prefix"] is { } text ? ServiceIdArgument.Format(ServicePrefix.Parse(text)) : "all prefixes";
            context.Output.WriteLine($"drained: {(string?)d["host"]} ({prefix})");
        }

        return 0;
    }
}
