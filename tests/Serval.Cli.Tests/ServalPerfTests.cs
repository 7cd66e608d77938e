using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Serval.Perf;

namespace Serval.Cli.Tests;

/// <summary>serval-perf: usage errors in-process, and short tests between a server and a client process on loopback.</summary>
public sealed class ServalPerfTests
{
    private static int s_next = Environment.ProcessId % 200;

    private static string PerfDll => Path.Combine(AppContext.BaseDirectory, "serval-perf.dll");

    /// <summary>A fresh loopback address in 127.201–250.x.y (the other test projects use lower ranges).</summary>
    private static IPAddress NextAddress()
    {
        var n = Interlocked.Increment(ref s_next);
        return new IPAddress([127, (byte)(201 + (Environment.ProcessId % 50)), (byte)(n / 250 % 250), (byte)((n % 250) + 2)]);
    }

    private static async Task<(int Code, string Output, string Error)> RunInProcessAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await PerfCommandLine.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData]
    [InlineData("frobnicate")]
    [InlineData("server")]
    [InlineData("client", "--udp", "127.0.0.1")]
    [InlineData("client", "--udp", "127.0.0.1", "--server", "not-an-address")]
    [InlineData("client", "--udp", "127.0.0.1", "--server", "127.0.0.2:54325", "--duration", "0")]
    [InlineData("client", "--udp", "127.0.0.1", "--server", "127.0.0.2:54325", "--duration", "3601")]
    [InlineData("client", "--udp", "127.0.0.1", "--server", "127.0.0.2:54325", "--parallel", "0")]
    [InlineData("client", "--udp", "127.0.0.1", "--server", "127.0.0.2:54325", "--duration", "1", "--bytes", "1M")]
    [InlineData("client", "--udp", "127.0.0.1", "--server", "127.0.0.2:54325", "--bytes", "lots")]
    [InlineData("client", "--udp", "127.0.0.1", "--server", "127.0.0.2:54325", "--mode", "carrier-pigeon")]
    [InlineData("client", "--udp", "127.0.0.1", "--server", "127.0.0.2:54325", "--size", "3")]
    [InlineData("client", "--udp", "0.0.0.0", "--server", "127.0.0.2:54325")]
    [InlineData("client", "--udp", "127.0.0.1", "--server", "[::1]:54325")]
    [InlineData("server", "--udp", "127.0.0.1", "--service", "")]
    [InlineData("server", "--udp", "127.0.0.1", "--window", "12")]
    public async Task Usage_errors_exit_2_with_a_message(params string[] args)
    {
        var (code, _, error) = await RunInProcessAsync(args);
        Assert.Equal(2, code);
        Assert.StartsWith("serval-perf", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_exits_0_and_names_the_options()
    {
        var (code, output, _) = await RunInProcessAsync("client", "--help");
        Assert.Equal(0, code);
        foreach (var option in new[] { "--server", "--mode", "--duration", "--bytes", "--parallel", "--size", "--udp", "--raw", "--json" })
        {
            Assert.Contains(option, output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_client_without_a_server_fails_with_exit_1()
    {
        var (code, _, error) = await RunInProcessAsync("client", "--udp", NextAddress().ToString(), "--server", $"{NextAddress()}:54325", "-t", "1");
        Assert.Equal(1, code);
        Assert.Contains("no answer", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("stream", 1)]
    [InlineData("stream", 2)]
    [InlineData("datagram", 2)]
    public async Task A_one_second_test_between_processes_reports_json(string mode, int parallel)
    {
        var serverAddress = NextAddress();
        using var server = Start("server", "--udp", $"{serverAddress}:54325", "--one-off", "--json", "--service", "test.perf");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            var ready = await server.StandardError.ReadLineAsync(deadline.Token);
            Assert.True(ready?.Contains("listening", StringComparison.Ordinal), $"server said: {ready}");
            using var client = Start("client", "--udp", NextAddress().ToString(), "--server", $"{serverAddress}:54325", "--service", "test.perf", "--mode", mode, "-P", $"{parallel}", "-t", "1", "--json");
            var clientOutput = client.StandardOutput.ReadToEndAsync(deadline.Token);
            var clientError = client.StandardError.ReadToEndAsync(deadline.Token);
            await client.WaitForExitAsync(deadline.Token);
            Assert.True(client.ExitCode == 0, $"client exit {client.ExitCode}: {await clientError}");
            var report = JsonNode.Parse(await clientOutput)!.AsObject();
            Assert.Equal("client", (string?)report["role"]);
            Assert.Equal(mode, (string?)report["mode"]);
            Assert.Equal(parallel, (int)report["parallel"]!);
            Assert.Equal(parallel, report["flows"]!.AsArray().Count);
            Assert.True((long)report["bytes"]! > 0);
            Assert.True((double)report["goodput_bps"]! > 0);
            Assert.InRange((double)report["seconds"]!, 0.9, 30);
            Assert.True((double)report["cpu_seconds"]! > 0);
            Assert.Equal((long)report["bytes"]!, report["flows"]!.AsArray().Sum(f => (long)f!["bytes"]!));
            Assert.True((long)report["retransmissions"]! >= 0);
            if (mode == "datagram")
            {
                Assert.True((long)report["datagrams_received"]! > 0);
                Assert.True((long)report["datagrams_received"]! <= (long)report["datagrams_sent"]!);
            }

            // The one-off server prints the same test from its side and exits 0.
            var serverLine = await server.StandardOutput.ReadLineAsync(deadline.Token);
            await server.WaitForExitAsync(deadline.Token);
            Assert.Equal(0, server.ExitCode);
            var serverReport = JsonNode.Parse(serverLine!)!.AsObject();
            Assert.Equal("server", (string?)serverReport["role"]);
            Assert.Equal(mode, (string?)serverReport["mode"]);
            Assert.Equal((long)report["bytes"]!, (long)serverReport["bytes"]!);
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true); // by this process's id, never by name
            }
        }
    }

    private static Process Start(params string[] arguments)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(PerfDll);
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException("could not start serval-perf");
    }
}
