using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace Serval.AspNetCore.Tests;

/// <summary>
/// <c>AddServal</c> with <c>Serval:Daemon</c>: the application attaches to a real servald process (servald.dll, built
/// with this project) instead of running an engine: Kestrel serves a service bound by name through servald, a second
/// attached application calls it with an <c>IHttpClientFactory</c> client, and the health check reports the attached
/// host healthy, then unhealthy once servald is killed (by its process id).
/// </summary>
[Trait("Tier", "slow")]
public sealed class AttachedHostingTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("servald-aspnet-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task AddServal_attaches_to_servald_serves_and_calls_by_name_and_the_health_check_sees_servald_go()
    {
        var ct = AspNetTestNet.Timeout(90);
        var socket = Path.Combine(_directory, "servald.sock");
        using var servald = new ServaldProcess(_directory, socket, AspNetTestNet.NextAddress().ToString());
        await Eventually.UntilAsync(() => ValueTask.FromResult(File.Exists(socket)), seen => seen, $"servald's control socket {socket}; servald said:\n{servald.Output}", cancellationToken: ct);

        // The serving application: attached, Kestrel on a service bound by name, the health check.
        var web = Attached(socket);
        web.Services.AddHealthChecks().AddServal();
        web.WebHost.ConfigureKestrel(o => o.ListenServal(ServiceEndPoint.FromName("test.di.attached")));
        await using var serverApp = web.Build();
        serverApp.MapGet("/hello", () => "hello from an attached app");
        await serverApp.StartAsync(ct);
        var host = serverApp.Services.GetRequiredService<ServalHost>();
        Assert.True(host.IsAttached, "AddServal with Serval:Daemon did not attach");

        var health = serverApp.Services.GetRequiredService<HealthCheckService>();
        var entry = (await health.CheckHealthAsync(ct)).Entries["serval"];
        Assert.True(entry.Status == HealthStatus.Healthy, $"{entry.Status}: {entry.Description}");
        Assert.Equal(true, entry.Data["attached"]);
        Assert.Contains(ServiceEndPoint.FromName("test.di.attached").ToString(), (string[])entry.Data["listeners"]);

        // The calling application: attached to the same servald, an IHttpClientFactory client by service name.
        var caller = Attached(socket);
        caller.Services.AddHttpClient("shop", c => c.BaseAddress = new Uri("http://test.di.attached/")).UseServal();
        await using (var callerApp = caller.Build())
        {
            await callerApp.StartAsync(ct);
            Assert.True(callerApp.Services.GetRequiredService<ServalHost>().IsAttached);
            var http = callerApp.Services.GetRequiredService<IHttpClientFactory>().CreateClient("shop");
            Assert.Equal("hello from an attached app", await http.GetStringAsync("hello", ct));
            await callerApp.StopAsync(ct);
        }

        // servald goes away: the attached host detaches and the health check says so.
        servald.Kill();
        entry = await Eventually.UntilAsync(
            async () => (await health.CheckHealthAsync(ct)).Entries["serval"],
            e => e.Status == HealthStatus.Unhealthy,
            "the health check to report servald gone",
            cancellationToken: ct);
        Assert.Contains("servald went away", entry.Description, StringComparison.Ordinal);
        await serverApp.StopAsync(ct);
    }

    private static WebApplicationBuilder Attached(string socket)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Serval:Daemon"] = socket });
        builder.Services.AddServal();
        builder.WebHost.UseServal();
        return builder;
    }

    /// <summary>servald.dll run as a process with a control socket and one UDP link; killed by its process id when disposed.</summary>
    private sealed class ServaldProcess : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();

        public ServaldProcess(string directory, string socket, string address)
        {
            var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = directory,
            };
            foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("Serval__", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                info.Environment.Remove(key);
            }

            info.ArgumentList.Add(ServaldDll);
            info.ArgumentList.Add($"--Serval:ControlSocket={socket}");
            info.ArgumentList.Add("--Serval:Name=aspnet-servald");
            info.ArgumentList.Add($"--Serval:Udp:0:Address={address}");
            info.ArgumentList.Add("--Serval:Udp:0:Port=0");
            _process = Process.Start(info) ?? throw new InvalidOperationException("could not start servald");
            _process.OutputDataReceived += (_, e) => Append(e.Data);
            _process.ErrorDataReceived += (_, e) => Append(e.Data);
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        /// <summary>servald.dll of the same configuration as this test, built as a project reference (not copied here).</summary>
        private static string ServaldDll
        {
            get
            {
                var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
                var framework = output.Name;
                var configuration = output.Parent!.Name;
                var root = output.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
                var dll = Path.Combine(root, "src", "servald", "bin", configuration, framework, "servald.dll");
                return File.Exists(dll) ? dll : throw new FileNotFoundException($"servald.dll not found at {dll}; build tests/Serval.AspNetCore.Tests (it builds servald)", dll);
            }
        }

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        private void Append(string? line)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }

        public void Kill()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true); // by this process's id, never by name
                _process.WaitForExit(10_000);
            }
        }

        public void Dispose()
        {
            Kill();
            _process.Dispose();
        }
    }
}
