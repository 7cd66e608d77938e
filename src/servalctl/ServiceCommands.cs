using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Serval.Wire;
using Spectre.Console;

namespace Serval.Cli;

/// <summary>
/// <c>servalctl service add|del|mod SERVICEID[:BITS] TARGET [priority N] [weight N]</c> and <c>service list</c>.
/// TARGET is an address (FORWARD; without a port the UDP default 54325), <c>drop</c> or <c>delay</c>.
/// </summary>
internal static class ServiceCommands
{
    public static Command Create(CliContext context)
    {
        var service = new Command("service", "add, remove, change and list service-table rules");
        service.Add(CreateChange(context, "add", "add a rule", "rules.add"));
        service.Add(CreateChange(context, "del", "remove a rule", "rules.del"));
        service.Add(CreateChange(context, "mod", "change a rule's priority and/or weight", "rules.mod"));
        var list = new Command("list", "list the service table with counters") { context.Json };
        list.SetAction(p => List(context, p));
        service.Add(list);
        return service;
    }

    private static Command CreateChange(CliContext context, string verb, string description, string op)
    {
        var id = new Argument<string>("SERVICEID") { Description = "default | decimal | 0x… | 64 hex digits, optionally /BITS or :BITS" };
        var target = new Argument<string>("TARGET") { Description = "next-hop address[:port] (FORWARD), drop or delay" };
        var rest = new Argument<string[]>("SETTINGS") { Description = "reference style: priority N weight N", Arity = new ArgumentArity(0, 4) };
        var priority = new Option<uint?>("--priority") { Description = "rule priority (highest set wins; default 1)" };
        var weight = new Option<uint?>("--weight") { Description = "weight within the priority set (default 1)" };
        var command = new Command(verb, description) { id, target, rest, priority, weight };
        command.SetAction(p =>
        {
            var name = $"service {verb}";
            if (!ServiceIdArgument.TryParse(p.GetValue(id)!, out var prefix, out var serviceName, out var why))
            {
                return context.Usage(name, $"malformed serviceID: {why}");
            }

            var prio = p.GetValue(priority);
            var wt = p.GetValue(weight);
            var tokens = p.GetValue(rest) ?? [];
            for (var i = 0; i < tokens.Length; i += 2)
            {
                if (i + 1 >= tokens.Length || !uint.TryParse(tokens[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                {
                    return context.Usage(name, $"'{tokens[i]}' must be followed by a non-negative number");
                }

                switch (tokens[i])
                {
                    case "priority":
                        prio = n;
                        break;
                    case "weight":
                        wt = n;
                        break;
                    default:
                        return context.Usage(name, $"unknown setting '{tokens[i]}' (priority N, weight N)");
                }
            }

            if (verb == "mod" && prio is null && wt is null)
            {
                return context.Usage(name, "give a new priority and/or weight");
            }

            if (verb == "del" && (prio is not null || wt is not null))
            {
                return context.Usage(name, "priority and weight do not apply to del");
            }

            var request = new JsonObject { ["op"] = op, ["prefix"] = prefix.ToString(), ["target"] = p.GetValue(target) };
            if (verb == "add" && serviceName is not null && prefix.Length == ServiceId.Bits)
            {
                request["name"] = serviceName; // servald remembers it: tables show the name
            }
            if (prio is not null)
            {
                request["priority"] = prio.Value;
            }

            if (wt is not null)
            {
                request["weight"] = wt.Value;
            }

            if (context.Request(p, name, request) is null)
            {
                return 1;
            }

            context.Output.WriteLine($"{verb} {ServiceIdArgument.Format(prefix)} {p.GetValue(target)}: ok");
            return 0;
        });
        return command;
    }

    private static int List(CliContext context, ParseResult p)
    {
        if (context.Request(p, "service list", new JsonObject { ["op"] = "rules.list" }) is not { } response)
        {
            return 1;
        }

        if (p.GetValue(context.Json))
        {
            context.PrintJson(response);
            return 0;
        }

        var table = new Table().AddColumns("prefix", "target", "priority", "weight", "resolved", "bytes", "dropped");
        foreach (var rule in response["rules"]!.AsArray())
        {
            var prefix = ServicePrefix.Parse((string)rule!["prefix"]!);
            table.AddRow(
                Markup.Escape(ServiceDisplay.Show(prefix, (string?)rule["name"])),
                Markup.Escape(FormatTarget(rule["target"]!.AsObject())),
                Num(rule["priority"]),
                Num(rule["weight"]),
                Num(rule["packetsResolved"]),
                Num(rule["bytesResolved"]),
                Num(rule["packetsDropped"]));
        }

        context.Console().Write(table);
        return 0;
    }

    internal static string Num(JsonNode? node) => node?.ToJsonString() ?? string.Empty;

    private static string FormatTarget(JsonObject target) => (string?)target["type"] switch
    {
        "forward" => $"forward {(string?)target["address"]} if {Num(target["interface"])}",
        "demux" => $"local socket {Num(target["socket"])} ({(string?)target["protocol"]})",
        var other => other ?? "?",
    };
}
