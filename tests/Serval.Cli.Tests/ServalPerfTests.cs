using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Serval.Perf;

namespace Serval.Cli.Tests;

/// <summary>serval-perf: usage errors in-process, and short tests between a server and a client process on loopback.</summary>
[Trait("Tier", "slow")]
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
    [InlineData("server", "--tcp", "127.0.0.1")]
    [InlineData("server", "--tcp", "127.0.0.1:7000", "--udp", "127.0.0.2")]
    [InlineData("server", "--udp", "127.0.0.1", "--register", "nowhere")]
    [InlineData("connect-rate", "--udp", "127.0.0.1")]
    [InlineData("connect-rate", "--tcp", "127.0.0.1:7000", "--udp", "127.0.0.2")]
    [InlineData("connect-rate", "--tcp", "127.0.0.1:7000", "--parallel", "0")]
    [InlineData("connect-rate", "--tcp", "127.0.0.1:7000", "--duration", "0")]
    [InlineData("connect-rate", "--tcp", "127.0.0.1:7000", "--warmup", "61")]
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

    [Fact]
    public async Task Raw_ip_without_cap_net_raw_is_refused_clearly()
    {
        // As root, drop CAP_NET_RAW from the child's capability sets (setpriv); otherwise the child lacks it anyway.
        string[] prefix = [];
        if (Environment.IsPrivilegedProcess)
        {
            Assert.SkipUnless(File.Exists("/usr/bin/setpriv"), "setpriv (util-linux) is needed to drop CAP_NET_RAW as root.");
            prefix = ["/usr/bin/setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", "--"];
        }

        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        string[] command = [.. prefix, dotnet, PerfDll, "server", "--raw", NextAddress().ToString(), "--one-off"];
        var info = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in command[1..])
        {
            info.ArgumentList.Add(a);
        }

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var child = Process.Start(info) ?? throw new InvalidOperationException("could not start serval-perf");
        try
        {
            var error = child.StandardError.ReadToEndAsync(deadline.Token);
            await child.WaitForExitAsync(deadline.Token);
            Assert.Equal(1, child.ExitCode);
            Assert.Contains("CAP_NET_RAW", await error, StringComparison.Ordinal);
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public async Task A_byte_count_test_over_raw_ip_between_processes()
    {
        Assert.SkipUnless(Serval.Links.RawIpLink.IsSupported, "Raw IP protocol 144 needs Linux with root or CAP_NET_RAW; run the tests as root to include this.");
        var report = await RunBetweenProcessesAsync("stream", 1, raw: true, "-n", "4M");
        Assert.Equal(4 * 1024 * 1024, (long)report["bytes"]!);
    }

    [Theory]
    [InlineData("stream", 1)]
    [InlineData("stream", 2)]
    [InlineData("datagram", 2)]
    public async Task A_one_second_test_between_processes_reports_json(string mode, int parallel)
    {
        var report = await RunBetweenProcessesAsync(mode, parallel, raw: false, "-t", "1");
        Assert.InRange((double)report["seconds"]!, 0.9, 30);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Connect_rate_with_echo_between_processes_reports_every_connection(bool tcp)
    {
        var serverAddress = NextAddress();
        string[] serverArgs = tcp ? ["server", "--tcp", $"{serverAddress}:7000"] : ["server", "--udp", $"{serverAddress}:54325", "--service", "test.rate"];
        string[] clientArgs = tcp
            ? ["connect-rate", "--tcp", $"{serverAddress}:7000"]
            : ["connect-rate", "--udp", NextAddress().ToString(), "--server", $"{serverAddress}:54325", "--service", "test.rate"];
        using var server = Start(serverArgs);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            var ready = await server.StandardError.ReadLineAsync(deadline.Token);
            Assert.True(ready?.Contains("listening", StringComparison.Ordinal), $"server said: {ready}");

            // Bounded twice: 20 connections in all, and at most 20 s.
            using var client = Start([.. clientArgs, "-P", "4", "--count", "20", "-t", "20", "--echo", "--json"]);
            var clientOutput = client.StandardOutput.ReadToEndAsync(deadline.Token);
            var clientError = client.StandardError.ReadToEndAsync(deadline.Token);
            await client.WaitForExitAsync(deadline.Token);
            Assert.True(client.ExitCode == 0, $"client exit {client.ExitCode}: {await clientError}");
            var report = JsonNode.Parse(await clientOutput)!.AsObject();
            Assert.Equal("connect-rate", (string?)report["mode"]);
            Assert.Equal(tcp ? "tcp" : "serval", (string?)report["transport"]);
            Assert.Equal(20, (long)report["connections"]!);
            Assert.Equal(0, (long)report["failed"]!);
            Assert.True((double)report["connections_per_second"]! > 0, $"no connection rate in the report: {report}");
            var latency = report["latency_ms"]!;
            Assert.InRange((double)latency["p50"]!, 0, (double)latency["p99"]!);
            Assert.InRange((double)latency["p99"]!, 0, (double)latency["max"]!);
            Assert.Equal(20, report["histogram"]!.AsArray().Sum(b => (long)b!["count"]!));
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true); // by this process's id, never by name
            }
        }
    }

    /// <summary>A one-off server and a client process on loopback; checks both JSON reports, returns the client's.</summary>
    private static async Task<JsonObject> RunBetweenProcessesAsync(string mode, int parallel, bool raw, params string[] amount)
    {
        var serverAddress = NextAddress();
        string[] serverLink = raw ? ["--raw", serverAddress.ToString()] : ["--udp", $"{serverAddress}:54325"];
        string[] clientLink = raw ? ["--raw", NextAddress().ToString(), "--server", serverAddress.ToString()] : ["--udp", NextAddress().ToString(), "--server", $"{serverAddress}:54325"];
        using var server = Start(["server", .. serverLink, "--one-off", "--json", "--service", "test.perf"]);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            var ready = await server.StandardError.ReadLineAsync(deadline.Token);
            Assert.True(ready?.Contains("listening", StringComparison.Ordinal), $"server said: {ready}");
            using var client = Start(["client", .. clientLink, "--service", "test.perf", "--mode", mode, "-P", $"{parallel}", .. amount, "--json"]);
            var clientOutput = client.StandardOutput.ReadToEndAsync(deadline.Token);
            var clientError = client.StandardError.ReadToEndAsync(deadline.Token);
            await client.WaitForExitAsync(deadline.Token);
            Assert.True(client.ExitCode == 0, $"client exit {client.ExitCode}: {await clientError}");
            var report = JsonNode.Parse(await clientOutput)!.AsObject();
            Assert.Equal("client", (string?)report["role"]);
            Assert.Equal(mode, (string?)report["mode"]);
            Assert.Equal(parallel, (int)report["parallel"]!);
            Assert.Equal(parallel, report["flows"]!.AsArray().Count);
            Assert.True((long)report["bytes"]! > 0, $"no bytes in the client report: {report}");
            Assert.True((double)report["goodput_bps"]! > 0, $"no goodput in the client report: {report}");
            Assert.InRange((double)report["seconds"]!, 0, 30);
            Assert.True((double)report["cpu_seconds"]! > 0, $"no CPU time in the client report: {report}");
            Assert.Equal((long)report["bytes"]!, report["flows"]!.AsArray().Sum(f => (long)f!["bytes"]!));
            Assert.True((long)report["retransmissions"]! >= 0, $"negative retransmissions in the client report: {report}");
            if (mode == "datagram")
            {
                Assert.True((long)report["datagrams_received"]! > 0, $"no datagrams received in the client report: {report}");
                Assert.True((long)report["datagrams_received"]! <= (long)report["datagrams_sent"]!, $"more datagrams received than sent in the client report: {report}");
            }

            // The one-off server prints the same test from its side and exits 0.
            var serverLine = await server.StandardOutput.ReadLineAsync(deadline.Token);
            await server.WaitForExitAsync(deadline.Token);
            Assert.Equal(0, server.ExitCode);
            var serverReport = JsonNode.Parse(serverLine!)!.AsObject();
            Assert.Equal("server", (string?)serverReport["role"]);
            Assert.Equal(mode, (string?)serverReport["mode"]);
            Assert.Equal((long)report["bytes"]!, (long)serverReport["bytes"]!);
            return report;
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
