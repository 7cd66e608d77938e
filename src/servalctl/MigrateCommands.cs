using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Serval.Cli;

/// <summary>
/// <c>servalctl migrate flow FLOWID IFACE | interface IFACE1 IFACE2 | service SERVICEID IFACE</c>: servald starts the
/// moves (an RSYN per flow) and answers how many started. IFACE is an interface number as in <c>flow list</c>, a link
/// address, or the name of the network interface that carries a link's address.
/// </summary>
internal static class MigrateCommands
{
    private const string IfaceHelp = "interface to move to: number as in flow list, link address, or network interface name";

    public static Command Create(CliContext context)
    {
        var migrate = new Command("migrate", "move flows to another interface");

        var flowId = new Argument<string>("FLOWID") { Description = "local flowID as in flow list (decimal or 0x hex)" };
        var flowIface = new Argument<string>("IFACE") { Description = IfaceHelp };
        var flow = new Command("flow", "migrate one flow") { flowId, flowIface, context.Json };
        flow.SetAction(p =>
        {
            var text = p.GetValue(flowId)!;
            return CommandLine.TryParseFlowId(text, out var id)
                ? Send(context, p, "migrate flow", new JsonObject { ["kind"] = "flow", ["flow"] = id, ["interface"] = p.GetValue(flowIface) })
                : context.Usage("migrate flow", $"malformed flowID '{text}': expected a 32-bit decimal or 0x hex number");
        });

        var from = new Argument<string>("IFACE1") { Description = "interface whose flows move" };
        var to = new Argument<string>("IFACE2") { Description = "interface they move to" };
        var iface = new Command("interface", "migrate every flow of an interface") { from, to, context.Json };
        iface.SetAction(p => Send(context, p, "migrate interface", new JsonObject { ["kind"] = "interface", ["from"] = p.GetValue(from), ["interface"] = p.GetValue(to) }));

        var serviceId = new Argument<string>("SERVICEID") { Description = "service whose flows move" };
        var serviceIface = new Argument<string>("IFACE") { Description = IfaceHelp };
        var service = new Command("service", "migrate every flow of a service") { serviceId, serviceIface, context.Json };
        service.SetAction(p => ServiceIdArgument.TryParse(p.GetValue(serviceId)!, out var prefix, out var why)
            ? Send(context, p, "migrate service", new JsonObject { ["kind"] = "service", ["prefix"] = prefix.ToString(), ["interface"] = p.GetValue(serviceIface) })
            : context.Usage("migrate service", $"malformed serviceID: {why}"));

        migrate.Add(flow);
        migrate.Add(iface);
        migrate.Add(service);
        return migrate;
    }

    private static int Send(CliContext context, ParseResult p, string verb, JsonObject request)
    {
        request["op"] = "migrate";
        if (context.Request(p, verb, request) is not { } response)
        {
            return 1;
        }

        if (p.GetValue(context.Json))
        {
            context.PrintJson(response);
            return 0;
        }

        var n = (int)response["migrating"]!;
        context.Output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{verb}: {n} flow{(n == 1 ? string.Empty : "s")} moving to interface {(int)response["interface"]!} ({(string?)response["link"]})"));
        return 0;
    }
}
