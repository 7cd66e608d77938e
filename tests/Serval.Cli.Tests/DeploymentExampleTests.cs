using System.Diagnostics;
using Serval.Netns;

namespace Serval.Cli.Tests;

/// <summary>
/// docs/deployment.md's example, run as its script does it (examples/multi-host.sh): a service router, a replica and a
/// client in three network namespaces, a file fetched by service name through the translators, its SHA-256 checked.
/// The script removes its namespaces and ends its processes itself; this test ends the script by its id if it overruns.
/// </summary>
[Trait("Tier", "netns")]
public sealed class DeploymentExampleTests
{
    private static readonly TimeSpan s_within = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task The_multi_host_example_fetches_a_file_by_service_name_through_the_router()
    {
        Assert.SkipUnless(NetNamespace.IsSupported, NetNamespace.UnsupportedReason ?? string.Empty);
        var missing = new[] { "python3", "curl", "sha256sum" }.Where(t => !OnPath(t)).ToList();
        Assert.SkipWhen(missing.Count > 0, $"the example needs {string.Join(", ", missing)}");

        var root = AppContext.BaseDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "Serval.sln")))
        {
            root = Path.GetDirectoryName(root);
        }

        Assert.NotNull(root);
        var info = new ProcessStartInfo(Path.Combine(root, "examples", "multi-host.sh"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = root,
        };
        info.ArgumentList.Add("--no-build"); // the test build has built servald, servalctl and serval-translate
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the example");
        var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(s_within);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            using (var term = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync(TestContext.Current.CancellationToken); // the script's trap cleans up
            }

            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(grace.Token);
            Assert.Fail($"the example still ran after {s_within.TotalMinutes} min:\n{await output}\n{await error}");
        }

        var report = $"exit {process.ExitCode}\nstdout:\n{await output}\nstderr:\n{await error}";
        Assert.True(process.ExitCode == 0, report);
        Assert.Contains("fetched 3000000 bytes through the service router, sha256", report, StringComparison.Ordinal);
        Assert.Contains("active", report, StringComparison.Ordinal); // the router's registrations table
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':').Any(d => d.Length > 0 && File.Exists(Path.Combine(d, tool)));
}
