using System.Globalization;
using System.Text.Json.Nodes;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Daemon;

/// <summary>
/// Executes control requests against a <see cref="ServalHost"/>: <c>rules.list|add|del|mod</c>, <c>flows.list</c>,
/// <c>stats</c>, <c>migrate</c>, <c>router.registrations</c>, <c>router.drain|undrain</c>. Every request gets exactly one response object: <c>{"ok":true,…}</c> or
/// <c>{"ok":false,"error":CODE,"message":TEXT}</c>. The schema is in docs/servald.md.
/// </summary>
internal sealed class ControlHandler(ServalHost host, FlowOwners? owners = null, ServiceNames? names = null)
{
    private readonly ServiceNames _names = names ?? new ServiceNames();

    public async ValueTask<JsonObject> HandleAsync(JsonObject request, CancellationToken cancellationToken)
    {
        var op = request["op"]?.GetValueKind() == System.Text.Json.JsonValueKind.String ? (string?)request["op"] : null;
        try
        {
            return op switch
            {
                "rules.list" => ListRules(request),
                "rules.add" or "rules.del" or "rules.mod" => await ChangeRuleAsync(op, request, cancellationToken).ConfigureAwait(false),
                "flows.list" => await ListFlowsAsync(cancellationToken).ConfigureAwait(false),
                "stats" => await StatsAsync(cancellationToken).ConfigureAwait(false),
                "migrate" => await MigrateAsync(request, cancellationToken).ConfigureAwait(false),
                "router.registrations" => await RouterRegistrationsAsync(cancellationToken).ConfigureAwait(false),
                "router.status" => await RouterStatusAsync(cancellationToken).ConfigureAwait(false),
                "router.drain" or "router.undrain" => await RouterDrainAsync(op == "router.drain", request, cancellationToken).ConfigureAwait(false),
                null => Error("bad_request", "missing \"op\""),
                _ => Error("unknown_op", $"unknown op '{op}'"),
            };
        }
        catch (RequestException e)
        {
            return Error(e.Code, e.Message);
        }
        catch (ObjectDisposedException)
        {
            return Error("stopping", "servald is stopping");
        }
    }

    public static JsonObject Error(string code, string message) => new() { ["ok"] = false, ["error"] = code, ["message"] = message };

    private static JsonObject Ok() => new() { ["ok"] = true };

    private JsonObject ListRules(JsonObject request)
    {
        // Optional "prefix": only the rules of that exact prefix.
        ServicePrefix? only = null;
        if (request["prefix"] is { } p)
        {
            only = ServicePrefix.TryParse((string?)p, out var parsed, out var why) ? parsed : throw new RequestException("bad_request", $"bad prefix: {why}");
        }

        var rules = new JsonArray();
        foreach (var r in host.GetRules())
        {
            if (only is null || r.Prefix == only.Value)
            {
                rules.Add(Named(RuleJson(r), _names.Find(r.Prefix)));
            }
        }

        var response = Ok();
        response["rules"] = rules;
        return response;
    }

    internal static JsonObject RuleJson(ServiceRuleInfo r) => new()
    {
        ["prefix"] = r.Prefix.ToString(),
        ["service"] = r.Prefix.Id.ToString(),
        ["bits"] = r.Prefix.Length,
        ["target"] = TargetJson(r.Target),
        ["priority"] = r.Priority,
        ["weight"] = r.Weight,
        ["flags"] = r.Flags.ToString(),
        ["packetsResolved"] = r.PacketsResolved,
        ["bytesResolved"] = r.BytesResolved,
        ["packetsDropped"] = r.PacketsDropped,
    };

    /// <summary>Adds <c>"name"</c> when the service's name is known (servalctl shows <c>name (short id)</c>).</summary>
    private static JsonObject Named(JsonObject json, string? name)
    {
        if (name is not null)
        {
            json["name"] = name;
        }

        return json;
    }

    private static JsonObject TargetJson(ServiceTarget t) => t.Type switch
    {
        ServiceTargetType.Forward => new() { ["type"] = "forward", ["address"] = t.Address.ToString(), ["interface"] = t.Interface },
        ServiceTargetType.Demux => new() { ["type"] = "demux", ["socket"] = t.Socket, ["protocol"] = t.Protocol == ServiceTarget.TcpProtocol ? "stream" : "datagram" },
        ServiceTargetType.Delay => new() { ["type"] = "delay" },
        ServiceTargetType.Drop => new() { ["type"] = "drop" },
        _ => new() { ["type"] = t.Type.ToString().ToLowerInvariant() },
    };

    private async ValueTask<JsonObject> ChangeRuleAsync(string op, JsonObject request, CancellationToken cancellationToken)
    {
        var prefixText = RequiredString(request, "prefix");
        if (!ServicePrefix.TryParse(prefixText, out var prefix, out var why))
        {
            throw new RequestException("bad_request", $"bad prefix '{prefixText}': {why}");
        }

        // Optional "name": the service name the prefix's ID was hashed from, remembered for the tables.
        if (op == "rules.add" && request["name"] is JsonValue nameValue && nameValue.TryGetValue<string>(out var name)
            && prefix.Length == ServiceId.Bits && !_names.Learn(prefix.Id, name))
        {
            throw new RequestException("bad_request", $"the name '{name}' does not hash to {prefix.Id}");
        }

        if (op == "rules.add" && !host.IsAttached && _names.Find(prefix) is { } known)
        {
            host.Admin.NameService(prefix.Id, known); // the host's log lines show it too
        }

        var target = ParseTarget(RequiredString(request, "target"));
        var priority = OptionalUInt(request, "priority");
        var weight = OptionalUInt(request, "weight");
        var result = op switch
        {
            "rules.add" => await host.AddRuleAsync(prefix, target, priority ?? ServiceTable.DefaultPriority, weight ?? ServiceTable.DefaultWeight, cancellationToken).ConfigureAwait(false),
            "rules.del" => await host.RemoveRuleAsync(prefix, target, cancellationToken).ConfigureAwait(false),
            _ => await host.ModifyRuleAsync(prefix, target, priority, weight, cancellationToken).ConfigureAwait(false),
        };
        return result switch
        {
            ServiceTableResult.Ok => Ok(),
            ServiceTableResult.NotFound => Error("not_found", $"no rule {prefix} -> {target}"),
            ServiceTableResult.AlreadyExists => Error("already_exists", $"a rule {prefix} -> {target} already exists"),
            _ => Error("invalid", $"{op} {prefix} -> {target}: {result}"),
        };
    }

    private ServiceTarget ParseTarget(string text)
    {
        switch (text.ToLowerInvariant())
        {
            case "drop":
                return ServiceTarget.Drop();
            case "delay":
                return ServiceTarget.Delay();
        }

        LinkAddress address;
        try
        {
            address = LinkAddress.Parse(text);
        }
        catch (FormatException e)
        {
            throw new RequestException("bad_request", $"bad target: {e.Message} (expected an address, address:port, 'drop' or 'delay')");
        }

        if (address.Port == 0 && host.Links.Any(l => l is UdpLink && l.LocalAddress.Family == address.Family))
        {
            address = address.WithPort(ServalInfo.DefaultUdpPort);
        }

        try
        {
            return host.ForwardTo(address);
        }
        catch (ArgumentException)
        {
            throw new RequestException("invalid", $"no link of this host can reach {address}");
        }
    }

    /// <summary>
    /// A flowID as <c>flows.list</c> shows it: a JSON number. The text form earlier versions listed (decimal, or
    /// <c>0x</c> hex) is still accepted.
    /// </summary>
    internal static bool TryFlowId(JsonNode? node, out FlowId flow)
    {
        flow = FlowId.None;
        if (node is not JsonValue v)
        {
            return false;
        }

        if (v.TryGetValue<uint>(out var number))
        {
            flow = new FlowId(number);
            return true;
        }

        if (v.TryGetValue<string>(out var text) && (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? uint.TryParse(text.AsSpan(2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out number)
                : uint.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out number)))
        {
            flow = new FlowId(number);
            return true;
        }

        return false;
    }

    private async ValueTask<JsonObject> ListFlowsAsync(CancellationToken cancellationToken)
    {
        var flows = new JsonArray();
        foreach (var f in await host.GetFlowsAsync(cancellationToken).ConfigureAwait(false))
        {
            flows.Add(new JsonObject
            {
                ["socket"] = f.Socket.Value,
                ["localFlow"] = f.LocalFlow.Value,
                ["peerFlow"] = f.PeerFlow.Value,
                ["service"] = f.Service.ToString(),
                ["serviceName"] = _names.Find(f.Service),
                ["protocol"] = f.Protocol.ToString(),
                ["state"] = f.State.ToString(),
                ["migration"] = f.Migration.ToString(),
                ["interface"] = f.Interface,
                ["localAddress"] = f.LocalAddress.ToString(),
                ["peerAddress"] = f.PeerAddress.ToString(),
                ["packetsSent"] = f.PacketsSent,
                ["packetsReceived"] = f.PacketsReceived,
                ["bytesSent"] = f.BytesSent,
                ["bytesReceived"] = f.BytesReceived,
                ["controlSrttMs"] = f.ControlSrtt.TotalMilliseconds,
                ["owner"] = owners?.Find(f.Socket.Value)?.ToJson(),
            });
        }

        var response = Ok();
        response["flows"] = flows;
        return response;
    }

    private async ValueTask<JsonObject> StatsAsync(CancellationToken cancellationToken)
    {
        var engine = new JsonObject();
        foreach (var p in typeof(EngineCounters).GetProperties())
        {
            var value = p.GetValue(host.Counters);
            engine[char.ToLowerInvariant(p.Name[0]) + p.Name[1..] + (value is TimeSpan ? "Ms" : string.Empty)] = value switch
            {
                long l => l,
                TimeSpan t => t.TotalMilliseconds,
                _ => Convert.ToString(value, CultureInfo.InvariantCulture),
            };
        }

        var rules = host.GetRules();
        var response = Ok();
        response["host"] = new JsonObject
        {
            ["name"] = host.Name,
            ["mode"] = host.Options.Engine.Mode.ToString(),
            ["links"] = new JsonArray([.. host.Links.Select(l => (JsonNode)JsonValue.Create(l.Name))]),
            ["flows"] = await host.GetFlowCountAsync(cancellationToken).ConfigureAwait(false),
        };
        response["engine"] = engine;
        response["table"] = new JsonObject
        {
            ["entries"] = rules.Select(r => r.Prefix).Distinct().Count(),
            ["rules"] = rules.Count,
            ["packetsResolved"] = rules.Sum(r => r.PacketsResolved),
            ["bytesResolved"] = rules.Sum(r => r.BytesResolved),
            ["packetsDropped"] = rules.Sum(r => r.PacketsDropped),
        };
        if (await host.Admin.GetResolverCountersAsync(cancellationToken).ConfigureAwait(false) is { } resolver)
        {
            var counters = new JsonObject();
            foreach (var p in typeof(Stack.ControlPlane.ResolverControllerCounters).GetProperties())
            {
                counters[char.ToLowerInvariant(p.Name[0]) + p.Name[1..]] = (long)p.GetValue(resolver)!;
            }

            response["resolver"] = counters;
        }

        return response;
    }

    /// <summary>
    /// <c>migrate</c>: <c>kind</c> <c>flow</c> (<c>flow</c>: local flowID), <c>interface</c> (<c>from</c>) or
    /// <c>service</c> (<c>prefix</c>), each with the destination <c>interface</c>. Answers how many flows started moving.
    /// </summary>
    private async ValueTask<JsonObject> MigrateAsync(JsonObject request, CancellationToken cancellationToken)
    {
        var kind = RequiredString(request, "kind");
        if (kind is not ("flow" or "interface" or "service"))
        {
            throw new RequestException("bad_request", $"unknown migrate kind '{kind}' (flow, interface or service)");
        }

        if (host.Links.Count < 2)
        {
            throw new RequestException("no_other_link", host.Links.Count == 0
                ? "this host has no links: there is nowhere to move flows"
                : $"this host has only one link ({host.Links[0].Name}): there is no other link to move flows to");
        }

        var to = ResolveLink(RequiredString(request, "interface"));
        int moving;
        try
        {
            switch (kind)
            {
                case "flow":
                    var flow = TryFlowId(request["flow"], out var id)
                        ? id
                        : throw new RequestException("bad_request", "missing number \"flow\" (the local flowID, as in flows.list localFlow)");
                    await host.MigrateFlowAsync(flow, to, cancellationToken).ConfigureAwait(false);
                    moving = 1;
                    break;
                case "interface":
                    var from = ResolveLink(RequiredString(request, "from"));
                    if (from == to)
                    {
                        throw new RequestException("invalid", $"interface {from + 1} ({host.Links[from].Name}) is both source and destination");
                    }

                    moving = await host.MigrateLinkAsync(from, to, cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    var prefixText = RequiredString(request, "prefix");
                    if (!ServicePrefix.TryParse(prefixText, out var prefix, out var why))
                    {
                        throw new RequestException("bad_request", $"bad prefix '{prefixText}': {why}");
                    }

                    moving = await host.MigrateServiceAsync(prefix, to, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
        catch (ServalException e)
        {
            var code = e.Error switch
            {
                ServalError.BadHandle => "unknown_flow",
                ServalError.NetworkDown => "link_down",
                ServalError.InvalidState => "invalid_state",
                _ => "invalid",
            };
            throw new RequestException(code, e.Message);
        }

        var response = Ok();
        response["kind"] = kind;
        response["interface"] = to + 1;
        response["link"] = host.Links[to].Name;
        response["migrating"] = moving;
        return response;
    }

    private async ValueTask<JsonObject> RouterRegistrationsAsync(CancellationToken cancellationToken)
    {
        RequireRouter();
        var snapshot = await host.GetRouterSnapshotAsync(cancellationToken).ConfigureAwait(false);
        var registrations = new JsonArray();
        foreach (var r in snapshot.Registrations.OrderBy(r => r.Prefix.ToString(), StringComparer.Ordinal).ThenBy(r => r.Host.ToString(), StringComparer.Ordinal))
        {
            registrations.Add(Named(new JsonObject
            {
                ["prefix"] = r.Prefix.ToString(),
                ["service"] = r.Prefix.Id.ToString(),
                ["bits"] = r.Prefix.Length,
                ["host"] = r.Host.ToString(),
                ["interface"] = r.Interface,
                ["weight"] = r.Weight,
                ["state"] = r.DrainedByRouter ? "drained" : r.Draining ? "draining" : "active",
                ["draining"] = r.Draining,
                ["drainedByRouter"] = r.DrainedByRouter,
                ["transports"] = r.Transports.ToString(),
                ["sender"] = r.Sender.ToString("x16", CultureInfo.InvariantCulture),
                ["leaseRemainingMs"] = (long)r.LeaseRemaining.TotalMilliseconds,
            }, _names.Find(r.Prefix)));
        }

        var drains = new JsonArray();
        foreach (var d in snapshot.Drains)
        {
            drains.Add(new JsonObject { ["host"] = d.Host.ToString(), ["prefix"] = d.Prefix?.ToString() });
        }

        var c = snapshot.Counters;
        var response = Ok();
        response["epoch"] = snapshot.Epoch.ToString("x16", CultureInfo.InvariantCulture);
        response["registrations"] = registrations;
        response["drains"] = drains;
        var counters = new JsonObject();
        foreach (var p in typeof(Stack.ControlPlane.RouterControllerCounters).GetProperties().Where(p => p.PropertyType == typeof(long)))
        {
            counters[char.ToLowerInvariant(p.Name[0]) + p.Name[1..]] = (long)p.GetValue(c)!;
        }

        response["counters"] = counters;
        if (snapshot.Registry is { } registry)
        {
            var fleet = FleetStatus(snapshot, registry);
            var all = new JsonArray();
            var nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            foreach (var r in snapshot.Fleet.OrderBy(r => r.Prefix.ToString(), StringComparer.Ordinal).ThenBy(r => r.Host.ToString(), StringComparer.Ordinal))
            {
                all.Add(new JsonObject
                {
                    ["prefix"] = r.Prefix.ToString(),
                    ["host"] = r.Host.ToString(),
                    ["weight"] = r.Weight,
                    ["state"] = r.Draining ? "draining" : "active",
                    ["router"] = r.Router,
                    ["routerEpoch"] = r.RouterEpoch.ToString("x16", CultureInfo.InvariantCulture),
                    ["sender"] = r.Sender.ToString("x16", CultureInfo.InvariantCulture),
                    ["leaseMs"] = r.LeaseMilliseconds,
                    ["writtenMsAgo"] = Math.Max(0, nowMs - r.WrittenAtUnixMilliseconds),
                });
            }

            fleet["registrations"] = all;
            response["fleet"] = fleet;
        }

        return response;
    }

    private async ValueTask<JsonObject> RouterStatusAsync(CancellationToken cancellationToken)
    {
        RequireRouter();
        var snapshot = await host.GetRouterSnapshotAsync(cancellationToken).ConfigureAwait(false);
        var response = Ok();
        response["epoch"] = snapshot.Epoch.ToString("x16", CultureInfo.InvariantCulture);
        response["registrations"] = snapshot.Registrations.Count;
        response["drains"] = snapshot.Drains.Count;
        response["state"] = snapshot.Registry is { Degraded: true } ? "degraded" : "ok";
        if (snapshot.Registry is { } registry)
        {
            response["fleet"] = FleetStatus(snapshot, registry);
        }

        return response;
    }

    private static JsonObject FleetStatus(RouterSnapshot snapshot, Stack.ControlPlane.RegistryStatus registry) => new()
    {
        ["name"] = snapshot.FleetName,
        ["degraded"] = registry.Degraded,
        ["revision"] = snapshot.FleetRevision,
        ["registryRevision"] = registry.Revision,
        ["registrations"] = snapshot.Fleet.Count,
        ["watchLagMs"] = registry.WatchLag.TotalMilliseconds,
        ["maxWatchLagMs"] = registry.MaxWatchLag.TotalMilliseconds,
        ["errors"] = registry.Errors,
        ["writes"] = registry.Writes,
        ["keysWritten"] = registry.Puts,
        ["eventsReceived"] = registry.EventsReceived,
        ["snapshots"] = registry.Snapshots,
        ["lastError"] = registry.LastError,
    };

    private async ValueTask<JsonObject> RouterDrainAsync(bool drain, JsonObject request, CancellationToken cancellationToken)
    {
        RequireRouter();
        var hostText = RequiredString(request, "host");
        LinkAddress address;
        try
        {
            address = LinkAddress.Parse(hostText);
        }
        catch (FormatException e)
        {
            throw new RequestException("bad_request", $"bad host '{hostText}': {e.Message} (expected address or address:port)");
        }

        ServicePrefix? prefix = null;
        if (request["prefix"] is not null)
        {
            var prefixText = RequiredString(request, "prefix");
            if (!ServicePrefix.TryParse(prefixText, out var p, out var why))
            {
                throw new RequestException("bad_request", $"bad prefix '{prefixText}': {why}");
            }

            prefix = p;
        }

        var changed = await host.SetRouterDrainingAsync(address, prefix, drain, cancellationToken).ConfigureAwait(false);
        if (!drain && !changed)
        {
            return Error("not_found", $"no drain of {address}{(prefix is { } x ? " " + x : string.Empty)}");
        }

        var response = Ok();
        response["changed"] = changed;
        return response;
    }

    private void RequireRouter()
    {
        if (!host.IsRegistrationRouter)
        {
            throw new RequestException("not_router", $"servald '{host.Name}' is not a registration router (it runs in {host.Options.Engine.Mode} mode without the router controller)");
        }
    }

    /// <summary>
    /// A link (index into <see cref="ServalHost.Links"/>) named by its interface number as in <c>flows.list</c> (1 = the
    /// first link), by its address (with or without the port), or by the name of the operating-system interface that
    /// carries its address (e.g. <c>eth1</c>).
    /// </summary>
    private int ResolveLink(string text)
    {
        var links = host.Links;
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            return number >= 1 && number <= links.Count
                ? number - 1
                : throw new RequestException("unknown_interface", $"no interface {number}: this host's links are interfaces 1 to {links.Count} ({LinkList()})");
        }

        if (System.Net.IPEndPoint.TryParse(text, out var endPoint))
        {
            var address = LinkAddress.FromEndPoint(endPoint);
            for (var i = 0; i < links.Count; i++)
            {
                var local = links[i].LocalAddress;
                if (local == address || (address.Port == 0 && local.WithPort(0) == address))
                {
                    return i;
                }
            }

            throw new RequestException("unknown_interface", $"no link of this host has the address {address} ({LinkList()})");
        }

        var nic = System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .FirstOrDefault(n => string.Equals(n.Name, text, StringComparison.Ordinal));
        if (nic is null)
        {
            throw new RequestException("unknown_interface", $"unknown interface '{text}': give an interface number, a link address or a network interface name ({LinkList()})");
        }

        var addresses = nic.GetIPProperties().UnicastAddresses.Select(a => LinkAddress.FromIPAddress(a.Address)).ToHashSet();
        for (var i = 0; i < links.Count; i++)
        {
            if (addresses.Contains(links[i].LocalAddress.WithPort(0)))
            {
                return i;
            }
        }

        throw new RequestException("unknown_interface", $"no link of this host is on interface '{text}' ({LinkList()})");
    }

    private string LinkList() => string.Join(", ", host.Links.Select((l, i) => $"{i + 1}: {l.Name}"));

    private static string RequiredString(JsonObject request, string name) =>
        request[name] is JsonValue v && v.TryGetValue<string>(out var s)
            ? s
            : throw new RequestException("bad_request", $"missing string \"{name}\"");

    private static uint? OptionalUInt(JsonObject request, string name) => request[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<uint>(out var n) => n,
        _ => throw new RequestException("bad_request", $"\"{name}\" must be a non-negative integer"),
    };
}
