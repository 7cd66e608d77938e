using System.Diagnostics;
using System.Net;
using System.Text;

namespace Serval.Cli.Tests;

/// <summary>
/// servald run as a process (servald.dll next to the tests) in a temporary working directory that may hold an
/// appsettings.json: what it does with bad configuration, <c>--help</c> and <c>--version</c>, and the keyless-router
/// warning. Every wait is bounded; a process still running at the end is killed by its id.
/// </summary>
[Trait("Tier", "slow")]
public sealed class DaemonProcessTests : IDisposable
{
    private static readonly TimeSpan s_exitWithin = TimeSpan.FromSeconds(30);
    private static int s_next = Environment.ProcessId % 200;
    private readonly string _directory = Directory.CreateTempSubdirectory("servald-config-").FullName;

    private static string ServaldDll => Path.Combine(AppContext.BaseDirectory, "servald.dll");

    private string SocketPath => Path.Combine(_directory, "servald.sock");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Invalid_json_in_appsettings_exits_1_with_one_line()
    {
        await File.WriteAllTextAsync(Path.Combine(_directory, "appsettings.json"), "{ \"Serval\": { \"Mode\": ", TestContext.Current.CancellationToken);
        var run = await RunAsync();
        AssertRefused(run, "appsettings.json");
        Assert.Contains("JSON", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_misspelt_key_in_appsettings_is_refused_by_name()
    {
        await File.WriteAllTextAsync(
            Path.Combine(_directory, "appsettings.json"),
            """{ "Logging": { "LogLevel": { "Default": "Warning" } }, "Serval": { "Mdoe": "ServiceRouter" } }""",
            TestContext.Current.CancellationToken);
        var run = await RunAsync();
        AssertRefused(run, "Serval:Mdoe");
        Assert.Contains("appsettings.json", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("Logging", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_misspelt_key_in_a_list_entry_on_the_command_line_is_refused_by_name()
    {
        var run = await RunAsync("--Serval:Udp:1:Adress=127.0.0.1");
        AssertRefused(run, "Serval:Udp:1:Adress");
        Assert.Contains("did you mean Serval:Udp:1:Address", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_misspelt_key_in_the_environment_is_refused_by_name()
    {
        var run = await RunAsync(environment: new Dictionary<string, string> { ["Serval__Router__Kee"] = "00112233445566778899aabbccddeeff" });
        AssertRefused(run, "Serval:Router:Kee");
    }

    [Theory]
    [InlineData("--Serval:Udp:0:Port=99999", "Serval:Udp:0:Port")]
    [InlineData("--Serval:Udp:0:Address=10.0.0.256", "Serval:Udp:0:Address")]
    [InlineData("--Serval:Mode=Router", "Serval:Mode")]
    [InlineData("--Serval:TimeWait=soon", "Serval:TimeWait")]
    [InlineData("--Serval:Registration:Routers:0=nowhere", "Serval:Registration:Routers:0")]
    [InlineData("--Serval:LinkPolicies:0:Kind=Tcp", "Serval:LinkPolicies:0:Kind")]
    [InlineData("--Serval:LinkPolicies:0:Port=99999", "Serval:LinkPolicies:0")]
    [InlineData("--Serval:LinkPolicies:0:Interface=eth0", "Serval:LinkPolicies:0:Interface")]
    [InlineData("--Serval:Resolver:StaticFile=/nonexistent/serval/services", "Serval:Resolver:StaticFile")]
    [InlineData("--Serval:Resolver:StaticTtl=5", "Serval:Resolver:StaticTtl")]
    [InlineData("--Serval:Resolver:Dns:Zone=serval.test", "Serval:Resolver:Dns:Servers")]
    [InlineData("--Serval:Resolver:Dns:Servers:0=nowhere", "Serval:Resolver:Dns:Servers:0")]
    [InlineData("--Serval:Resolver:Routers=true", "Serval:Resolver:Routers")]
    [InlineData("--Serval:Resolver:DelayPriority=-1", "Serval:Resolver:DelayPriority")]
    public async Task A_bad_value_exits_1_with_one_line_naming_the_key(string argument, string key)
    {
        var run = await RunAsync(argument);
        AssertRefused(run, key);
    }

    [Fact]
    public async Task Help_prints_usage_and_exits_0_without_starting()
    {
        var run = await RunAsync("--help");
        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith("Usage: servald", run.Output, StringComparison.Ordinal);
        Assert.Contains("Exit codes", run.Output, StringComparison.Ordinal);
        Assert.Contains("Serval__", run.Output, StringComparison.Ordinal);
        Assert.Equal(string.Empty, run.Error);
        Assert.False(File.Exists(SocketPath));
    }

    [Fact]
    public async Task Version_prints_the_version_and_exits_0_without_starting()
    {
        var run = await RunAsync("--version");
        Assert.Equal(0, run.ExitCode);
        var version = typeof(Serval.Daemon.DaemonOptions).Assembly
            .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        Assert.Equal($"servald {version}", run.Output.Trim());
        Assert.Equal(string.Empty, run.Error);
        Assert.False(File.Exists(SocketPath));
    }

    [Fact]
    public async Task A_service_router_without_a_key_warns_at_start()
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(s_exitWithin);
        var warned = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new StringBuilder();
        using var process = Start(["--Serval:Mode=ServiceRouter"], null);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                warned.TrySetException(new InvalidOperationException($"servald closed its output without the warning:\n{output}"));
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
            }

            if (e.Data.Contains("without a key", StringComparison.Ordinal))
            {
                warned.TrySetResult(e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var line = await warned.Task.WaitAsync(deadline.Token);
            Assert.Contains("anyone on the link can register any service", line, StringComparison.Ordinal);
            Assert.Contains("Serval:Router:Key", line, StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true); // by this process's id, never by name
            }

            await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        }
    }

    private static void AssertRefused(ServaldRun run, string key)
    {
        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.True(run.Output.Length == 0, run.ToString());
        var lines = run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, run.ToString());
        Assert.StartsWith("servald: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(key, lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Error, StringComparison.Ordinal);
    }

    private static IPAddress NextAddress()
    {
        var n = Interlocked.Increment(ref s_next);
        return new IPAddress([127, 200, (byte)(n / 250 % 250), (byte)((n % 250) + 2)]);
    }

    /// <summary>Runs servald to its exit; one still running after <see cref="s_exitWithin"/> is killed and reported.</summary>
    private async Task<ServaldRun> RunAsync(params string[] arguments) => await RunAsync(null, arguments);

    private async Task<ServaldRun> RunAsync(IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        using var process = Start(arguments, environment);
        var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(s_exitWithin);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true); // by this process's id, never by name
            await process.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.Fail($"servald {string.Join(' ', arguments)} still ran after {s_exitWithin.TotalSeconds} s:\n{await output}\n{await error}");
        }

        return new ServaldRun(process.ExitCode, await output, await error);
    }

    /// <summary>
    /// Starts servald in the temporary directory with a control socket there and a UDP link on a free port of an
    /// unused loopback address (so that a daemon that does start disturbs nothing), then <paramref name="arguments"/>.
    /// </summary>
    private Process Start(IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _directory,
        };
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("Serval__", StringComparison.OrdinalIgnoreCase) || k.EndsWith("_ENVIRONMENT", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        info.ArgumentList.Add(ServaldDll);
        info.ArgumentList.Add($"--Serval:ControlSocket={SocketPath}");
        info.ArgumentList.Add($"--Serval:Udp:0:Address={NextAddress()}");
        info.ArgumentList.Add("--Serval:Udp:0:Port=0");
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a); // last, so that they win over the defaults above
        }
        return Process.Start(info) ?? throw new InvalidOperationException("could not start servald");
    }

    private sealed record ServaldRun(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Error}";
    }
}
