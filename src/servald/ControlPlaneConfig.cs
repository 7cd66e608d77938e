using System.Globalization;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval.Daemon;

/// <summary>Turns <c>Serval:Registration</c> and <c>Serval:Router</c> into controller options; every mistake is a <see cref="DaemonException"/> naming the key.</summary>
internal static class ControlPlaneConfig
{
    /// <summary>
    /// The host controller's options, or null when <c>Serval:Registration</c> is absent (a lone
    /// <c>Serval:RegisterWithRouter</c> then runs with the defaults). Its routers are joined to <c>RegisterWithRouter</c>.
    /// </summary>
    public static HostControllerOptions? Registration(DaemonOptions options, IReadOnlyList<LinkPlan> links, IReadOnlyList<LinkPolicy> policies)
    {
        var shorthand = !string.IsNullOrEmpty(options.RegisterWithRouter);
        if (options.Registration is not { } r || (r.Routers.Count == 0 && !shorthand))
        {
            if (options.Registration is { KeyFile: not null } or { Key: not null })
            {
                throw new DaemonException("Serval:Registration has a key but no Routers (nor Serval:RegisterWithRouter)");
            }

            return null;
        }

        if (options.Mode != EngineMode.Host)
        {
            throw new DaemonException("Serval:Registration is for Host mode; a service router registers upstream with Serval:Router:Upstream");
        }

        var serviceId = ParseServiceId(r.ServiceId, "Serval:Registration:ServiceId");
        var routers = r.Routers.Select((text, i) => Endpoint(text, serviceId, links, policies, $"Serval:Registration:Routers:{i}")).ToList();
        return Validated(
            new HostControllerOptions
            {
                Routers = routers,
                RouterSelection = r.RouterSelection,
                RefreshInterval = Milliseconds(r.RefreshMs, "Serval:Registration:RefreshMs"),
                Lease = Milliseconds(r.LeaseMs, "Serval:Registration:LeaseMs"),
                DefaultWeight = r.Weight,
                Key = Key(r.Key, r.KeyFile, "Serval:Registration"),
                InstallDefaultRule = r.DefaultRoute,
            },
            "Serval:Registration");
    }

    /// <summary>The router controller's options, or null when this daemon runs none.</summary>
    public static RouterControllerOptions? Router(DaemonOptions options, IReadOnlyList<LinkPlan> links, IReadOnlyList<LinkPolicy> policies)
    {
        if (options.Mode != EngineMode.ServiceRouter)
        {
            if (options.Router is { Enabled: true })
            {
                throw new DaemonException("Serval:Router is for ServiceRouter mode (set Serval:Mode=ServiceRouter)");
            }

            return null;
        }

        var r = options.Router ?? new RouterSettings();
        if (!r.Enabled)
        {
            return null;
        }

        var key = Key(r.Key, r.KeyFile, "Serval:Router");
        HostControllerOptions? upstream = null;
        if (r.Upstream.Count > 0)
        {
            var upstreamId = ParseServiceId(r.UpstreamServiceId, "Serval:Router:UpstreamServiceId");
            upstream = new HostControllerOptions
            {
                Routers = [.. r.Upstream.Select((text, i) => Endpoint(text, upstreamId, links, policies, $"Serval:Router:Upstream:{i}"))],
                RefreshInterval = Milliseconds(r.UpstreamRefreshMs, "Serval:Router:UpstreamRefreshMs"),
                Lease = Milliseconds(r.UpstreamLeaseMs, "Serval:Router:UpstreamLeaseMs"),
                Key = key,
                InstallDefaultRule = false,
            };
        }

        var aggregates = r.Aggregates.Select((text, i) => ServicePrefix.TryParse(text, out var p, out var why)
            ? p
            : throw new DaemonException($"Serval:Router:Aggregates:{i}: bad prefix '{text}': {why}")).ToList();
        var selfCertifying = r.SelfCertifyingPrefixes.Select((text, i) => ServicePrefix.TryParse(text, out var p, out var why)
            ? p
            : throw new DaemonException($"Serval:Router:SelfCertifyingPrefixes:{i}: bad prefix '{text}': {why}")).ToList();
        return Validated(
            new RouterControllerOptions
            {
                SelfCertifyingPrefixes = selfCertifying,
                ServiceId = ParseServiceId(r.ServiceId, "Serval:Router:ServiceId"),
                MinLease = Milliseconds(r.MinLeaseMs, "Serval:Router:MinLeaseMs"),
                MaxLease = Milliseconds(r.MaxLeaseMs, "Serval:Router:MaxLeaseMs"),
                Key = key,
                Upstream = upstream,
                UpstreamAggregates = aggregates,
                FleetName = r.Fleet is null ? null : FleetName(options),
            },
            "Serval:Router");
    }

    /// <summary>The etcd registry of a router fleet (<c>Serval:Router:Fleet</c>), or null.</summary>
    public static EtcdRegistryOptions? Fleet(DaemonOptions options, bool router)
    {
        if (options.Router?.Fleet is not { } f)
        {
            return null;
        }

        if (!router)
        {
            throw new DaemonException("Serval:Router:Fleet needs the router controller (ServiceRouter mode, Serval:Router:Enabled)");
        }

        if (f.Endpoints.Count == 0)
        {
            throw new DaemonException("Serval:Router:Fleet:Endpoints lists no etcd member (e.g. http://10.0.0.1:2379)");
        }

        var endpoints = new List<Uri>();
        for (var i = 0; i < f.Endpoints.Count; i++)
        {
            if (!Uri.TryCreate(f.Endpoints[i], UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || uri.AbsolutePath != "/")
            {
                throw new DaemonException($"Serval:Router:Fleet:Endpoints:{i}: '{f.Endpoints[i]}' is not an http:// or https:// URL of an etcd member (scheme://host:port)");
            }

            endpoints.Add(uri);
        }

        if (!f.Root.StartsWith('/') || !f.Root.EndsWith('/') || f.Root.Length < 2)
        {
            throw new DaemonException($"Serval:Router:Fleet:Root must start and end with '/' and name a prefix (was '{f.Root}')");
        }

        var tls = endpoints.Any(u => u.Scheme == Uri.UriSchemeHttps);
        if (!tls && (f.CaFile ?? f.CertFile ?? f.KeyFile) is not null)
        {
            throw new DaemonException("Serval:Router:Fleet: CaFile, CertFile and KeyFile need https:// endpoints");
        }

        if ((f.CertFile is null) != (f.KeyFile is null))
        {
            throw new DaemonException("Serval:Router:Fleet: set both CertFile and KeyFile (a client certificate and its key), or neither");
        }

        foreach (var (file, key) in new[] { (f.CaFile, "CaFile"), (f.CertFile, "CertFile"), (f.KeyFile, "KeyFile") })
        {
            if (file is not null && !File.Exists(file))
            {
                throw new DaemonException($"Serval:Router:Fleet:{key}: {file} does not exist");
            }
        }

        var password = f.Password;
        if (f.PasswordFile is not null)
        {
            if (password is not null)
            {
                throw new DaemonException("Serval:Router:Fleet: set Password or PasswordFile, not both");
            }

            try
            {
                password = File.ReadAllText(f.PasswordFile).TrimEnd('\r', '\n');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new DaemonException($"Serval:Router:Fleet:PasswordFile: cannot read {f.PasswordFile}: {e.Message}", e);
            }
        }

        if ((f.Username is null) != (password is null))
        {
            throw new DaemonException("Serval:Router:Fleet: Username and Password (or PasswordFile) go together");
        }

        if (f.MaxTxnOps < 1)
        {
            throw new DaemonException($"Serval:Router:Fleet:MaxTxnOps must be positive (was {f.MaxTxnOps.ToString(CultureInfo.InvariantCulture)})");
        }

        return new EtcdRegistryOptions
        {
            Endpoints = endpoints,
            Root = f.Root,
            CaFile = f.CaFile,
            CertFile = f.CertFile,
            KeyFile = f.KeyFile,
            Username = f.Username,
            Password = password,
            RequestTimeout = Milliseconds(f.RequestTimeoutMs, "Serval:Router:Fleet:RequestTimeoutMs"),
            MaxTxnOps = f.MaxTxnOps,
        };
    }

    private static string FleetName(DaemonOptions options) => options.Router?.Fleet?.Name is { Length: > 0 } name ? name : options.Name;

    /// <summary>The hosts drained from the start (<c>Serval:Router:Drain</c>).</summary>
    public static IReadOnlyList<LinkAddress> InitialDrains(DaemonOptions options) =>
        options.Router is { } r
            ? [.. r.Drain.Select((text, i) => ParseAddress(text, $"Serval:Router:Drain:{i}"))]
            : [];

    /// <summary>Parses <c>address[:port]</c>; port 0 is kept.</summary>
    public static LinkAddress ParseAddress(string text, string key)
    {
        try
        {
            return LinkAddress.Parse(text);
        }
        catch (FormatException e)
        {
            throw new DaemonException($"{key}: '{text}' is not an address[:port]: {e.Message}", e);
        }
    }

    /// <summary>Decodes a key given as hex or base64 (optionally prefixed <c>hex:</c> / <c>base64:</c>).</summary>
    /// <exception cref="FormatException">Neither encoding fits.</exception>
    public static byte[] DecodeKey(string text)
    {
        text = text.Trim();
        if (text.StartsWith("hex:", StringComparison.OrdinalIgnoreCase))
        {
            return Convert.FromHexString(text[4..]);
        }

        if (text.StartsWith("base64:", StringComparison.OrdinalIgnoreCase))
        {
            return Convert.FromBase64String(text[7..]);
        }

        if (text.Length % 2 == 0 && text.All(char.IsAsciiHexDigit))
        {
            return Convert.FromHexString(text);
        }

        return Convert.FromBase64String(text);
    }

    private static ReadOnlyMemory<byte> Key(string? text, string? file, string section)
    {
        if (text is not null && file is not null)
        {
            throw new DaemonException($"{section}: set Key or KeyFile, not both");
        }

        string source;
        if (file is not null)
        {
            try
            {
                text = File.ReadAllText(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new DaemonException($"{section}:KeyFile: cannot read {file}: {e.Message}", e);
            }

            source = $"{section}:KeyFile ({file})";
        }
        else
        {
            source = $"{section}:Key";
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            return file is null ? ReadOnlyMemory<byte>.Empty : throw new DaemonException($"{source} is empty");
        }

        byte[] key;
        try
        {
            key = DecodeKey(text);
        }
        catch (FormatException)
        {
            throw new DaemonException($"{source} is neither hex nor base64");
        }

        return key.Length >= ControlProtocol.MinKeyLength
            ? key
            : throw new DaemonException($"{source} has {key.Length} bytes; a key has at least {ControlProtocol.MinKeyLength}");
    }

    private static RouterEndpoint Endpoint(string text, ServiceId serviceId, IReadOnlyList<LinkPlan> links, IReadOnlyList<LinkPolicy> policies, string key)
    {
        var address = ParseAddress(text, key);
        var index = -1;
        for (var i = 0; i < links.Count; i++)
        {
            if (links[i].Family == address.Family)
            {
                index = i;
                break;
            }
        }

        if (index < 0)
        {
            // Only a link policy reaches it: interface 0 lets the controller take the policy's links as they come.
            var policy = policies.FirstOrDefault(p => DaemonPlan.Covers(p, address.Family))
                ?? throw new DaemonException($"{key}: no link of this host can reach {address}");
            if (address.Port == 0 && policy.Kind == LinkKind.Udp)
            {
                address = address.WithPort(policy.Port == 0 ? ServalInfo.DefaultUdpPort : policy.Port);
            }

            return new RouterEndpoint(address, 0, serviceId);
        }

        if (address.Port == 0 && !links[index].Raw)
        {
            address = address.WithPort(ServalInfo.DefaultUdpPort);
        }

        return new RouterEndpoint(address, index + 1, serviceId);
    }

    private static ServiceId ParseServiceId(string? text, string key)
    {
        if (string.IsNullOrEmpty(text))
        {
            return ControlProtocol.RouterServiceId;
        }

        return ServiceId.TryParse(text, out var id, out var why) && !id.IsZero
            ? id
            : throw new DaemonException($"{key}: bad serviceID '{text}': {why ?? "zero"}");
    }

    private static TimeSpan Milliseconds(int value, string key) =>
        value > 0 ? TimeSpan.FromMilliseconds(value) : throw new DaemonException($"{key} must be a positive number of milliseconds (was {value.ToString(CultureInfo.InvariantCulture)})");

    private static T Validated<T>(T options, string section)
    {
        try
        {
            (options as HostControllerOptions)?.Validate();
            (options as RouterControllerOptions)?.Validate();
            return options;
        }
        catch (ArgumentException e)
        {
            throw new DaemonException($"invalid {section}: {e.Message}", e);
        }
    }
}
