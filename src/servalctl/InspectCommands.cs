using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Serval.Cli;

/// <summary><c>servalctl flow list</c> and <c>servalctl stats</c> (read-only; <c>--json</c> for machines).</summary>
internal static class InspectCommands
{
    public static Command CreateFlow(CliContext context)
    {
        var list = new Command("list", "list flows with their state and counters") { context.Json };
        list.SetAction(p =>
        {
            if (context.Request(p, "flow list", new JsonObject { ["op"] = "flows.list" }) is not { } response)
            {
                return 1;
            }

            if (p.GetValue(context.Json))
            {
                context.PrintJson(response);
                return 0;
            }

            var table = new Table().AddColumns("flow", "peer flow", "service", "proto", "state", "if", "peer", "app", "pkts out", "pkts in", "bytes out", "bytes in");
            foreach (var f in response["flows"]!.AsArray())
            {
                string Cell(string k) => k switch
                {
                    "service" => ServiceDisplay.Show((string?)f!["service"], (string?)f["serviceName"]),
                    "owner" => f!["owner"] is JsonObject o ? $"{(string?)o["name"]}[{ServiceCommands.Num(o["pid"])}]" : "-",
                    _ => f![k] is JsonValue v && v.TryGetValue<string>(out var s) ? s : ServiceCommands.Num(f[k]),
                };

                table.AddRow(
                    [.. new[] { "localFlow", "peerFlow", "service", "protocol", "state", "interface", "peerAddress", "owner", "packetsSent", "packetsReceived", "bytesSent", "bytesReceived" }
                        .Select(k => Markup.Escape(Cell(k)))]);
            }

            context.Console().Write(table);
            return 0;
        });
        return new Command("flow", "inspect flows") { list };
    }

    public static Command CreateStats(CliContext context)
    {
        var stats = new Command("stats", "engine and service-table counters") { context.Json };
        stats.SetAction(p =>
        {
            if (context.Request(p, "stats", new JsonObject { ["op"] = "stats" }) is not { } response)
            {
                return 1;
            }

            if (p.GetValue(context.Json))
            {
                context.PrintJson(response);
                return 0;
            }

            var host = response["host"]!;
            context.Output.WriteLine($"host {(string?)host["name"]} ({(string?)host["mode"]}), {ServiceCommands.Num(host["flows"])} flows, links: {string.Join(", ", host["links"]!.AsArray().Select(l => (string?)l))}");
            var table = new Table().AddColumns("counter", "value");
            foreach (var section in new[] { "engine", "table" })
            {
                foreach (var (name, value) in response[section]!.AsObject())
                {
                    table.AddRow(Markup.Escape($"{section}.{name}"), ServiceCommands.Num(value));
                }
            }

            context.Console().Write(table);
            return 0;
        });
        return stats;
    }
}
