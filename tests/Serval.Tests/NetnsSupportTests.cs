using System.Net;
using System.Net.Sockets;
using Serval.Netns;
using Xunit;

namespace Serval.Tests;

/// <summary>The namespace test kit itself: namespaces, veth links and sockets created inside a namespace. Needs root.</summary>
[Trait("Tier", "netns")]
public sealed class NetnsSupportTests
{
    [Fact]
    public async Task Sockets_created_in_two_namespaces_talk_over_a_veth_and_everything_is_removed()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        string nameA, nameB;
        await using (var a = NetNamespace.Create("kita"))
        await using (var b = NetNamespace.Create("kitb"))
        {
            nameA = a.Name;
            nameB = b.Name;
            Veth.Connect(a, "va", "10.77.0.1/24", b, "vb", "10.77.0.2/24");
            using var receiver = b.Invoke(() =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                s.Bind(new IPEndPoint(IPAddress.Parse("10.77.0.2"), 0));
                return s;
            });
            using var sender = a.Invoke(() =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                s.Bind(new IPEndPoint(IPAddress.Parse("10.77.0.1"), 0));
                return s;
            });

            // The address exists only inside the namespaces, not in this process's own.
            Assert.Throws<SocketException>(() =>
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                s.Bind(new IPEndPoint(IPAddress.Parse("10.77.0.2"), 0));
            });

            sender.SendTo(new byte[] { 7, 7, 7 }, receiver.LocalEndPoint!);
            var buffer = new byte[16];
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var n = await receiver.ReceiveAsync(buffer, cts.Token);
            Assert.Equal(3, n);

            using var p = a.Start("ip", ["-o", "link", "show", "va"]);
            var output = await p.StandardOutput.ReadToEndAsync(cts.Token);
            await p.WaitForExitAsync(cts.Token);
            Assert.Contains("va@", output, StringComparison.Ordinal);
        }

        var list = NetnsList();
        Assert.DoesNotContain(nameA, list, StringComparison.Ordinal);
        Assert.DoesNotContain(nameB, list, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_tags_are_refused()
    {
        Assert.Throws<ArgumentException>(() => NetNamespace.Create("has space"));
        Assert.Throws<ArgumentException>(() => NetNamespace.Create("muchtoolongtag"));
    }

    private static string NetnsList()
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ip", "netns list") { RedirectStandardOutput = true })!;
        var s = p.StandardOutput.ReadToEnd();
        p.WaitForExit(10_000);
        return s;
    }
}
