using Serval.Netns;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Steps shared by the mobility tests in namespaces (renumbering, both ends moving): hosts started inside a
/// namespace, a one-byte echo, bounded polling and a router's targets for a service.
/// </summary>
internal static class NetnsSteps
{
    /// <summary>
    /// Builds the options and starts a host on a thread inside <paramref name="ns"/>, so that its sockets (the links
    /// the options create, and the netlink monitor) belong to the namespace.
    /// </summary>
    public static ServalHost StartHost(NetNamespace ns, Func<ServalHostOptions> options) =>
        ns.Invoke(() => ServalHost.StartAsync(options()).AsTask().GetAwaiter().GetResult());

    /// <summary>One byte each way, as an echo.</summary>
    public static async Task ExchangeAsync(ServalConnection client, ServalConnection server, byte value, CancellationToken ct)
    {
        var one = new byte[1];
        await client.GetStream().WriteAsync(new[] { value }, ct);
        await server.GetStream().ReadExactlyAsync(one, ct);
        Assert.Equal(value, one[0]);
        await server.GetStream().WriteAsync(one, ct);
        await client.GetStream().ReadExactlyAsync(one, ct);
        Assert.Equal(value, one[0]);
    }

    /// <summary>The router's FORWARD targets for <paramref name="service"/>.</summary>
    public static List<LinkAddress> RouterTargets(ServalHost router, ServiceId service) =>
        [.. router.Admin.GetRules().Where(r => r.Prefix == ServicePrefix.Exact(service) && r.Target.Type == ServiceTargetType.Forward).Select(r => r.Target.Address)];

    /// <summary>Waits (at most 20 s, polling every 5 ms) until <paramref name="condition"/> holds; fails naming <paramref name="what"/>.</summary>
    public static Task PollAsync(Func<bool> condition, string what, CancellationToken ct) =>
        Eventually.TrueAsync(condition, what, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(5), ct);

    /// <inheritdoc cref="PollAsync(Func{bool}, string, CancellationToken)"/>
    public static Task PollAsync(Func<ValueTask<bool>> condition, string what, CancellationToken ct) =>
        Eventually.TrueAsync(condition, what, TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(5), ct);
}
