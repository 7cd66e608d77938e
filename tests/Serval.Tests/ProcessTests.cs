using System.Diagnostics;
using System.Security.Cryptography;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Hosts in separate processes over UDP loopback: <c>serval-demo</c> is started as a child by path (echo-server mode,
/// or the whole demo), waited for with bounded timeouts, and ended by its process id.
/// </summary>
[Trait("Tier", "slow")]
public sealed class ProcessTests
{
    private static string DemoDll => Path.Combine(AppContext.BaseDirectory, "serval-demo.dll");

    private static Process StartDemo(params string[] arguments)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(DemoDll);
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException("could not start serval-demo");
    }

    private static async Task StopAsync(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.StandardInput.Close(); // the child ends when its input closes
            }

            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await process.WaitForExitAsync(wait.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // not exited in time, or its input pipe is already gone: killed below
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true); // by this process's id, never by name
            }

            process.Dispose();
        }
    }

    [Fact]
    public async Task Streams_and_datagrams_with_a_host_in_another_process()
    {
        var ct = TestNet.Timeout(60);
        var service = ServiceId.FromName("test.process.echo");
        var address = TestNet.NextAddress();
        var child = StartDemo("echo-server", address.ToString(), "test.process.echo");
        try
        {
            var ready = await child.StandardOutput.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(30), ct);
            if (ready?.StartsWith("READY ", StringComparison.Ordinal) != true)
            {
                Assert.Fail($"child said '{ready}', stderr: {await ErrorsAfterExitAsync(child)}");
            }

            var server = LinkAddress.Parse(ready!["READY ".Length..]);

            await using var client = await TestNet.UdpHostAsync("client");
            var (sent, received) = await StreamTests.TransferAsync(client, service, 4 * 1024 * 1024, ct, server);
            Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));

            await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), client.Admin.ForwardTo(server), cancellationToken: ct);
            await using var socket = await ServalDatagramSocket.BindAsync(client, cancellationToken: ct);

            // 50 datagrams of 1 to 1380 bytes (the most an unconnected datagram carries on a 1472-byte UDP link), one at
            // a time (no loss to tolerate on loopback), echoed by the other process; everything sent and everything
            // echoed compared with SHA-256. One byte more is refused at once.
            var tooLarge = await Assert.ThrowsAsync<ServalException>(async () => await socket.SendToAsync(service, new byte[1381], ct));
            Assert.Equal(Serval.ServalError.InvalidArgument, tooLarge.Error);
            var random = new Random(50);
            var datagramsSent = new MemoryStream();
            var echoed = new MemoryStream();
            var buffer = new byte[2000];
            for (var i = 0; i < 50; i++)
            {
                var payload = new byte[random.Next(1, 1381)];
                random.NextBytes(payload);
                datagramsSent.Write(payload);
                await socket.SendToAsync(service, payload, ct);
                var reply = await socket.ReceiveFromAsync(buffer, ct);
                Assert.Equal(service, reply.Source);
                echoed.Write(buffer, 0, reply.ReceivedBytes);
            }

            Assert.Equal(SHA256.HashData(datagramsSent.ToArray()), SHA256.HashData(echoed.ToArray()));
        }
        finally
        {
            await StopAsync(child);
        }
    }

    [Fact]
    public async Task Through_a_router_in_another_process_to_a_server_in_a_third()
    {
        var ct = TestNet.Timeout(60);
        var service = ServiceId.FromName("test.process.routed");
        var serverAddress = TestNet.NextAddress();
        var routerAddress = TestNet.NextAddress();
        var server = StartDemo("echo-server", serverAddress.ToString(), "test.process.routed");
        var router = StartDemo("router", routerAddress.ToString(), "test.process.routed", serverAddress.ToString());
        try
        {
            foreach (var child in new[] { server, router })
            {
                var ready = await child.StandardOutput.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(30), ct);
                Assert.True(ready?.StartsWith("READY ", StringComparison.Ordinal) == true, $"child said '{ready}'");
            }

            await using var client = await TestNet.UdpHostAsync("client", defaultRouter: LinkAddress.FromIPAddress(routerAddress, ServalInfo.DefaultUdpPort));
            for (var i = 0; i < 3; i++)
            {
                var (sent, received) = await StreamTests.TransferAsync(client, service, 1024 * 1024, ct);
                Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
            }

            router.StandardInput.Close();
            var report = await router.StandardOutput.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(20), ct);
            // The router saw the three SYNs (a retransmitted SYN is forwarded too) and nothing else.
            var words = report?.Split(' ') ?? [];
            Assert.True(words is ["FORWARDED", var f, "RECEIVED", var r] && f == r && int.Parse(f, System.Globalization.CultureInfo.InvariantCulture) >= 3, report);
        }
        finally
        {
            await StopAsync(router);
            await StopAsync(server);
        }
    }

    [Fact]
    public async Task The_demo_runs_to_completion_with_all_checks_passing()
    {
        var ct = TestNet.Timeout(60);
        var child = StartDemo("--quick");
        try
        {
            var output = child.StandardOutput.ReadToEndAsync(ct);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(45));
            await child.WaitForExitAsync(wait.Token);
            var text = await output;
            Assert.SkipWhen(text.Contains("cannot bind", StringComparison.Ordinal), "127.0.0.x:54325 is taken (another demo is running): " + text);
            Assert.True(child.ExitCode == 0, text);
            Assert.Contains("all checks passed", text, StringComparison.Ordinal);
            Assert.Contains("only SYNs went through the router", text, StringComparison.Ordinal);
        }
        finally
        {
            await StopAsync(child);
        }
    }

    /// <summary>Stops the child (bounded) and returns what it wrote to stderr, for a failure message.</summary>
    private static async Task<string> ErrorsAfterExitAsync(Process child)
    {
        await StopAsync(child);
        try
        {
            return await child.StandardError.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            return "(stderr still open after the child was stopped)";
        }
    }
}
