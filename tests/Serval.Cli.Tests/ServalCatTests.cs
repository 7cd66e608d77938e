using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Serval.Cat;
using Serval.Links;
using Serval.Wire;
using static Serval.Cli.Tests.ToolProcesses;

namespace Serval.Cli.Tests;

/// <summary>
/// serval-cat: listen and connect processes on loopback relaying their standard input and output, checked with
/// SHA-256 both ways; datagrams; the exit codes of an unreachable service and of usage errors (in-process).
/// </summary>
[Trait("Tier", "slow")]
public sealed class ServalCatTests
{
    private static int s_next = Environment.ProcessId % 200;

    /// <summary>A fresh loopback address in 127.199.x.y (the other test classes use other ranges).</summary>
    private static IPAddress NextAddress()
    {
        var n = Interlocked.Increment(ref s_next);
        return new IPAddress([127, 199, (byte)(n / 250 % 250), (byte)((n % 250) + 2)]);
    }

    private static CancellationToken Timeout(int seconds) =>
        CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken, new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token).Token;

    [Fact]
    public async Task A_stream_carries_megabytes_both_ways_between_listen_and_connect_processes()
    {
        var ct = Timeout(120);
        var server = NextAddress();
        var toListener = RandomData(4 * 1024 * 1024, 1);
        var toConnector = RandomData(1024 * 1024, 2);
        using var listen = Start("--udp", server.ToString(), "listen", "test.cat.stream");
        Process? connector = null;
        try
        {
            var ready = await listen.StandardError.ReadLineAsync(ct);
            Assert.True(ready?.Contains("listening on test.cat.stream", StringComparison.Ordinal), $"serval-cat listen said: {ready}");
            var listenError = listen.StandardError.ReadToEndAsync(ct);

            connector = Start("--udp", NextAddress().ToString(), "connect", "test.cat.stream", "--peer", server.ToString());
            var connectError = connector.StandardError.ReadToEndAsync(ct);

            // Each side writes its input and then closes it (end of input: a half-close), while its output is read.
            var received = ReadAllAsync(listen, ct);
            var answered = ReadAllAsync(connector, ct);
            await Task.WhenAll(WriteAndCloseAsync(listen, toConnector, ct), WriteAndCloseAsync(connector, toListener, ct));
            var atListener = await received;
            var atConnector = await answered;
            await listen.WaitForExitAsync(ct);
            await connector.WaitForExitAsync(ct);

            var report = $"listen exit {listen.ExitCode}: {await listenError}\nconnect exit {connector.ExitCode}: {await connectError}";
            Assert.True(listen.ExitCode == 0 && connector.ExitCode == 0, report);
            Assert.Equal(toListener.Length, atListener.Length);
            Assert.Equal(SHA256.HashData(toListener), SHA256.HashData(atListener));
            Assert.Equal(SHA256.HashData(toConnector), SHA256.HashData(atConnector));
        }
        finally
        {
            EndByPid(listen);
            EndByPid(connector);
            connector?.Dispose();
        }
    }

    [Fact]
    public async Task Datagrams_arrive_and_the_listener_exits_when_the_connecting_side_closes()
    {
        var ct = Timeout(90);
        var server = NextAddress();
        using var listen = Start("-u", "--udp", server.ToString(), "listen", "test.cat.datagram");
        Process? connector = null;
        try
        {
            var ready = await listen.StandardError.ReadLineAsync(ct);
            Assert.True(ready?.Contains("(datagrams)", StringComparison.Ordinal), $"serval-cat listen said: {ready}");
            var listenError = listen.StandardError.ReadToEndAsync(ct);
            listen.StandardInput.Close(); // a listener's datagram session lasts until the peer closes, input or not

            connector = Start("-u", "--size", "1000", "--udp", NextAddress().ToString(), "connect", "test.cat.datagram", "--peer", server.ToString());
            var connectError = connector.StandardError.ReadToEndAsync(ct);
            var received = ReadAllAsync(listen, ct);
            var lines = new StringBuilder();
            for (var i = 0; i < 200; i++)
            {
                lines.Append(CultureInfoInvariant($"datagram line {i}\n"));
            }

            var sent = Encoding.ASCII.GetBytes(lines.ToString());
            await WriteAndCloseAsync(connector, sent, ct);
            await connector.WaitForExitAsync(ct);
            var atListener = await received;
            await listen.WaitForExitAsync(ct);

            var report = $"listen exit {listen.ExitCode}: {await listenError}\nconnect exit {connector.ExitCode}: {await connectError}";
            Assert.True(listen.ExitCode == 0 && connector.ExitCode == 0, report);
            Assert.Equal(SHA256.HashData(sent), SHA256.HashData(atListener));
        }
        finally
        {
            EndByPid(listen);
            EndByPid(connector);
            connector?.Dispose();
        }
    }

    [Fact]
    public async Task A_host_with_no_listener_refuses_with_exit_code_3()
    {
        var ct = Timeout(60);
        await using var peer = await ServalHost.StartAsync(new ServalHostOptions { Name = "no-listener", Links = [new UdpLink(NextAddress())] }, ct);
        var (code, _, error) = await RunInProcessAsync(
            ["--udp", NextAddress().ToString(), "connect", "test.cat.nobody", "--peer", peer.Links[0].LocalAddress.ToString()], [], ct);
        Assert.True(code == ExitCodes.Unreachable, error);
        Assert.Contains("refused", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_router_that_does_not_know_the_service_gives_exit_code_3()
    {
        var ct = Timeout(60);
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "router",
            Links = [new UdpLink(NextAddress())],
            Engine = Serval.Stack.EngineOptions.Default with { Mode = Serval.Stack.EngineMode.ServiceRouter },
        }, ct);
        var (code, _, error) = await RunInProcessAsync(
            ["--udp", NextAddress().ToString(), "--router", router.Links[0].LocalAddress.ToString(), "connect", "test.cat.unknown"], [], ct);
        Assert.True(code == ExitCodes.Unreachable, error);
        Assert.Contains("not found", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stream_between_two_in_process_sessions_through_a_router_half_closes()
    {
        var ct = Timeout(60);
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "router",
            Links = [new UdpLink(NextAddress())],
            Engine = Serval.Stack.EngineOptions.Default with { Mode = Serval.Stack.EngineMode.ServiceRouter },
            RouterControl = Serval.Stack.ControlPlane.RouterControllerOptions.Default,
        }, ct);
        var routerAddress = router.Links[0].LocalAddress.ToString();
        using var listenOutput = new MemoryStream();
        using var listenError = new StringWriter();
        var listening = CatCommandLine.RunAsync(
            ["--udp", NextAddress().ToString(), "--router", routerAddress, "listen", "test.cat.routed"],
            new MemoryStream(Encoding.ASCII.GetBytes("pong\n")),
            listenOutput,
            TextWriter.Synchronized(listenError),
            inputIsRedirected: true,
            ct);

        // The listener registers with the router; the connecting side knows only the router.
        var service = ServicePrefix.Exact(ServiceId.FromName("test.cat.routed"));
        while (!router.Admin.GetRules().Any(r => r.Prefix == service))
        {
            Assert.False(listening.IsCompleted, listenError.ToString());
            await Task.Delay(20, ct);
        }

        var (code, output, error) = await RunInProcessAsync(["--udp", NextAddress().ToString(), "--router", routerAddress, "connect", "test.cat.routed"], Encoding.ASCII.GetBytes("ping\n"), ct);
        Assert.True(code == 0, error);
        Assert.Equal("pong\n", output);
        Assert.Equal(0, await listening.WaitAsync(ct));
        Assert.Equal("ping\n", Encoding.ASCII.GetString(listenOutput.ToArray()));
    }

    [Theory]
    [InlineData]
    [InlineData("connect", "x")]
    [InlineData("--udp", "127.0.0.1", "connect")]
    [InlineData("--udp", "127.0.0.1", "connect", "x/16")]
    [InlineData("--udp", "127.0.0.1", "connect", "x", "--peer", "somewhere")]
    [InlineData("--udp", "0.0.0.0", "listen", "x")]
    [InlineData("--udp", "127.0.0.1", "--attach", "listen", "x")]
    [InlineData("--attach", "/tmp/none", "--router", "127.0.0.2", "connect", "x")]
    [InlineData("--udp", "127.0.0.1", "--router", "nowhere", "listen", "x")]
    [InlineData("--udp", "127.0.0.1", "-u", "--size", "0", "connect", "x")]
    [InlineData("--udp", "127.0.0.1", "--wait", "0", "connect", "x")]
    [InlineData("--udp", "127.0.0.1", "lisen", "x")]
    [InlineData("--udp", "127.0.0.1", "listen", "x@127.0.0.2")]
    public async Task Usage_errors_exit_2_with_a_message(params string[] args)
    {
        var (code, _, error) = await RunInProcessAsync(args, [], TestContext.Current.CancellationToken);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.StartsWith("serval-cat", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_lists_the_exit_codes_and_version_prints_the_version()
    {
        var (code, output, _) = await RunInProcessAsync(["--help"], [], TestContext.Current.CancellationToken);
        Assert.Equal(0, code);
        Assert.Contains("3 service unreachable", output, StringComparison.Ordinal);

        (code, output, _) = await RunInProcessAsync(["--version"], [], TestContext.Current.CancellationToken);
        Assert.Equal(0, code);
        var version = typeof(CatCommandLine).Assembly.GetName().Version!;
        Assert.StartsWith($"{version.Major}.{version.Minor}.{version.Build}", output, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Output, string Error)> RunInProcessAsync(string[] args, byte[] input, CancellationToken ct)
    {
        using var output = new MemoryStream();
        using var error = new StringWriter();
        var code = await CatCommandLine.RunAsync(args, new MemoryStream(input), output, error, inputIsRedirected: true, ct);
        return (code, Encoding.UTF8.GetString(output.ToArray()), error.ToString());
    }

    private static string CultureInfoInvariant(FormattableString text) => FormattableString.Invariant(text);

    private static Process Start(params string[] arguments) => StartTool("serval-cat.dll", redirectInput: true, arguments);
}
