using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;
using Serval.Wire;

namespace Serval.Cli.Tests;

/// <summary>
/// The NuGet packages: every .NET tool installs from a local feed into a fresh tool path and prints its version, and
/// the library packages carry a readme, the license expression, the repository and symbols. The feed is
/// artifacts/packages (what .ci/run packs after its build) when it holds this build's version; otherwise the
/// projects are packed here into a temporary feed (<c>dotnet pack --no-build</c>, bounded in time), and the tests
/// are skipped, saying why, when that cannot be done.
/// </summary>
[Trait("Tier", "slow")]
public sealed class PackageTests
{
    /// <summary>The .NET tools: package id = command name.</summary>
    private static readonly string[] s_tools = ["servalctl", "servald", "serval-perf", "serval-translate", "serval-cat"];

    private static readonly string[] s_libraries = ["Serval.Wire", "Serval.Stack", "Serval", "Serval.AspNetCore"];
    private static readonly TimeSpan s_packLimit = TimeSpan.FromMinutes(6);
    private static readonly TimeSpan s_commandLimit = TimeSpan.FromMinutes(3);
    private static readonly SemaphoreSlim s_feedLock = new(1, 1);
    private static Feed? s_feed;

    public static TheoryData<string> Tools => new(s_tools);

    /// <summary>The package version of this build: the informational version without its source revision.</summary>
    private static string Version
    {
        get
        {
            var informational = typeof(PackageTests).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
            var plus = informational.IndexOf('+', StringComparison.Ordinal);
            return plus < 0 ? informational : informational[..plus];
        }
    }

    [Theory]
    [MemberData(nameof(Tools))]
    public async Task A_tool_installs_from_the_local_feed_into_a_fresh_tool_path_and_prints_its_version(string tool)
    {
        var ct = TestContext.Current.CancellationToken;
        var feed = await FeedAsync(ct);
        var toolPath = Directory.CreateTempSubdirectory("serval-tool-path-").FullName;
        try
        {
            // Only the local feed: nothing is fetched from elsewhere (a tool package holds all it needs).
            var config = Path.Combine(toolPath, "nuget.config");
            await File.WriteAllTextAsync(config, $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed.Directory}" />
                  </packageSources>
                </configuration>
                """, ct);
            var bin = Path.Combine(toolPath, "bin");
            var install = await RunAsync(Dotnet, ["tool", "install", "--tool-path", bin, "--configfile", config, "--add-source", feed.Directory, tool, "--version", Version], toolPath, ct);
            Assert.True(install.Code == 0, $"dotnet tool install {tool}: {install}");

            var command = Path.Combine(bin, tool);
            var version = await RunAsync(command, ["--version"], toolPath, ct);
            Assert.True(version.Code == 0, $"{tool} --version: {version}");
            Assert.Contains(Version, version.Output, StringComparison.Ordinal);

            if (tool == "servalctl")
            {
                var id = await RunAsync(command, ["id", "shop.api"], toolPath, ct);
                Assert.True(id.Code == 0, $"servalctl id shop.api: {id}");
                Assert.Contains(ServiceId.FromName("shop.api").ToString(), id.Output, StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(toolPath, recursive: true);
        }
    }

    [Fact]
    public async Task Library_packages_have_a_readme_the_license_the_repository_xml_docs_and_symbols()
    {
        var feed = await FeedAsync(TestContext.Current.CancellationToken);
        foreach (var library in s_libraries)
        {
            var package = Path.Combine(feed.Directory, $"{library}.{Version}.nupkg");
            Assert.True(File.Exists(package), $"{package} is missing");
            Assert.True(File.Exists(Path.ChangeExtension(package, ".snupkg")), $"{library}: no symbol package (.snupkg)");
            using var zip = ZipFile.OpenRead(package);
            var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
            var ns = nuspec.Root!.GetDefaultNamespace();
            var metadata = nuspec.Root.Element(ns + "metadata")!;
            Assert.Equal("README.md", (string?)metadata.Element(ns + "readme"));
            Assert.NotNull(zip.GetEntry("README.md"));
            var license = metadata.Element(ns + "license");
            Assert.Equal("expression", (string?)license?.Attribute("type"));
            Assert.Equal("MIT", (string?)license);
            var repository = metadata.Element(ns + "repository");
            Assert.Equal("git", (string?)repository?.Attribute("type"));
            Assert.StartsWith("https://github.com/", (string?)repository?.Attribute("url"), StringComparison.Ordinal);
            Assert.NotNull(zip.GetEntry($"lib/net10.0/{library}.xml"));
        }
    }

    private sealed record Feed(string Directory);

    private sealed record CommandResult(int Code, string Output, string Error)
    {
        public override string ToString() => $"exit {Code}\nstdout:\n{Output}\nstderr:\n{Error}";
    }

    private static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";

    private static string? RepositoryRoot()
    {
        var root = AppContext.BaseDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "Serval.sln")))
        {
            root = Path.GetDirectoryName(root);
        }

        return root;
    }

    /// <summary>A feed with this build's packages: artifacts/packages if complete, else packed here once.</summary>
    private static async Task<Feed> FeedAsync(CancellationToken ct)
    {
        await s_feedLock.WaitAsync(ct);
        try
        {
            if (s_feed is not null)
            {
                return s_feed;
            }

            var root = RepositoryRoot();
            Assert.SkipWhen(root is null, "the repository (Serval.sln) is not above the test binaries: no projects to pack");
            var ids = s_tools.Concat(s_libraries).ToList();
            var artifacts = Path.Combine(root!, "artifacts", "packages");
            if (ids.All(id => File.Exists(Path.Combine(artifacts, $"{id}.{Version}.nupkg"))))
            {
                return s_feed = new Feed(artifacts);
            }

            // Pack what this build compiled (Release, as the tests run) into a temporary feed.
            var feed = Directory.CreateTempSubdirectory("serval-feed-").FullName;
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(s_packLimit);
            var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
            foreach (var id in ids)
            {
                var project = Path.Combine(root!, "src", id, $"{id}.csproj");
                CommandResult pack;
                try
                {
                    pack = await RunAsync(Dotnet, ["pack", project, "-c", configuration, "--no-build", "--no-restore", "-o", feed, "-p:PackageOutputPath=" + feed], root!, limit.Token);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    Assert.Skip($"packing the projects took more than {s_packLimit.TotalMinutes} min (run .ci/run, or dotnet pack Serval.sln -c Release --no-build, to fill artifacts/packages)");
                    throw;
                }

                Assert.SkipWhen(pack.Code != 0, $"dotnet pack {id} --no-build failed (build the solution in {configuration} first): {pack}");
            }

            return s_feed = new Feed(feed);
        }
        finally
        {
            s_feedLock.Release();
        }
    }

    private static async Task<CommandResult> RunAsync(string file, string[] arguments, string directory, CancellationToken ct)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        // The installed tools' launchers find the runtime this test runs on.
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { } host)
        {
            info.Environment["DOTNET_ROOT"] = Path.GetDirectoryName(host);
        }

        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync(ct);
        var error = process.StandardError.ReadToEndAsync(ct);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(s_commandLimit);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true); // by this process's id, never by name
            throw;
        }

        return new CommandResult(process.ExitCode, await output, await error);
    }
}
