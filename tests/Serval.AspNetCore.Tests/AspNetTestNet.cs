using System.Net;
using Xunit;

namespace Serval.AspNetCore.Tests;

/// <summary>Loopback addresses and time limits shared by this project's tests.</summary>
internal static class AspNetTestNet
{
    private static int s_next = Environment.ProcessId % 200;

    /// <summary>A fresh loopback address in 127.250.x.y (other test projects use other ranges).</summary>
    public static IPAddress NextAddress()
    {
        var n = Interlocked.Increment(ref s_next);
        return new IPAddress([127, 250, (byte)(n / 250 % 250), (byte)((n % 250) + 2)]);
    }

    /// <summary>The test's cancellation, or <paramref name="seconds"/> from now, whichever comes first.</summary>
    public static CancellationToken Timeout(int seconds) =>
        CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken, new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token).Token;
}
