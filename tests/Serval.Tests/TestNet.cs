using System.Net;
using System.Net.Sockets;
using Serval.Links;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Tests;

/// <summary>
/// Loopback addresses and hosts for integration tests. Each test process takes its own 127.N.x.y range (N from the
/// process id) so that concurrent test runs on one machine do not collide; every host uses the default port.
/// </summary>
internal static class TestNet
{
    private static int s_next;
    private static readonly int s_octet = 100 + (Environment.ProcessId % 100);

    /// <summary>Engine settings that end flows fast (short TIME-WAIT) so tests can check that nothing lingers.</summary>
    public static EngineOptions FastEngine { get; } = EngineOptions.Default with
    {
        TimeWait = TimeSpan.FromMilliseconds(200),
        FinWait2Timeout = TimeSpan.FromSeconds(5),
    };

    /// <summary>A fresh loopback address.</summary>
    public static IPAddress NextAddress()
    {
        var n = Interlocked.Increment(ref s_next);
        return new IPAddress([127, (byte)s_octet, (byte)(n / 250), (byte)((n % 250) + 2)]);
    }

    /// <summary>A UDP link on a fresh loopback address (the default port), retrying if the address is taken.</summary>
    public static UdpLink UdpLink(UdpLinkOptions? options = null)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return new UdpLink(NextAddress(), ServalInfo.DefaultUdpPort, options);
            }
            catch (SocketException) when (attempt < 20)
            {
            }
        }
    }

    /// <summary>Starts a host on one fresh UDP link.</summary>
    public static ValueTask<ServalHost> UdpHostAsync(string name, EngineOptions? engine = null, LinkAddress defaultRouter = default, UdpLinkOptions? link = null) =>
        ServalHost.StartAsync(new ServalHostOptions
        {
            Name = name,
            Links = [UdpLink(link)],
            Engine = engine ?? FastEngine,
            DefaultRouter = defaultRouter,
        });

    public static LinkAddress Address(this ServalHost host, int link = 0) => host.Links[link].LocalAddress;

    /// <summary>A cancellation token that bounds a test step.</summary>
    public static CancellationToken Timeout(int seconds = 20) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    /// <summary>Polls until <paramref name="condition"/> holds or the time is up.</summary>
    public static Task<bool> EventuallyAsync(Func<Task<bool>> condition, int seconds = 10) =>
        Eventually.WithinAsync(async () => await condition(), TimeSpan.FromSeconds(seconds));
}
