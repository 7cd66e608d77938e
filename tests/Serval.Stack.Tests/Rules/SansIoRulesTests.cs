using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit;

namespace Serval.Stack.Tests.Rules;

/// <summary>
/// The rules of the sans-I/O libraries (docs/architecture.md). The compiler checks the banned APIs
/// (src/BannedSymbols.txt, error RS0030 through src/SansIo.props); these tests show that a banned use fails a build,
/// and check what the analyzer cannot see: the keywords <c>lock</c> (on an object), <c>async</c> and <c>await</c>,
/// which name no API, and <c>Task</c>/<c>ValueTask</c> in declarations (the analyzer flags uses of a banned type's
/// members, not a declared type, and a task can come from an allowed API such as <c>Stream.ReadAsync</c>).
/// </summary>
public sealed partial class SansIoRulesTests
{
    private static readonly string[] SansIoProjects = ["Serval.Stack", "Serval.Wire"];

    [Fact]
    public void Sans_io_libraries_use_no_lock_async_await_or_tasks()
    {
        var offences = new List<string>();
        foreach (var project in SansIoProjects)
        {
            foreach (var file in SourceFiles(Path.Combine(RepositoryRoot(), "src", project)))
            {
                var lines = File.ReadAllLines(file);
                for (var i = 0; i < lines.Length; i++)
                {
                    var code = lines[i].TrimStart();
                    if (code.StartsWith("//", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    if (Keywords().Match(code) is { Success: true } m)
                    {
                        offences.Add($"{project}/{Path.GetFileName(file)}:{i + 1}: {m.Value.Trim()}");
                    }
                }
            }
        }

        Assert.True(offences.Count == 0, "lock/async/await/Task in a sans-I/O library:\n" + string.Join('\n', offences));
    }

    [Fact]
    public void The_sans_io_projects_import_the_banned_api_rules()
    {
        foreach (var project in SansIoProjects)
        {
            var text = File.ReadAllText(Path.Combine(RepositoryRoot(), "src", project, project + ".csproj"));
            Assert.True(text.Contains("SansIo.props", StringComparison.Ordinal), $"{project}.csproj does not import src/SansIo.props:\n{text}");
        }
    }

    /// <summary>
    /// Builds a throw-away project under artifacts/ with the libraries' settings and rules (Directory.Build.props,
    /// src/SansIo.props), one banned use per line, and expects the build to fail with RS0030 on every one of them.
    /// By hand: <c>dotnet build artifacts/banned-api-probe</c> after this test ran.
    /// </summary>
    [Fact]
    [Trait("Tier", "slow")]
    public void A_banned_api_fails_the_build()
    {
        var dir = Path.Combine(RepositoryRoot(), "artifacts", "banned-api-probe");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "Probe.csproj"), """
            <Project Sdk="Microsoft.NET.Sdk">
              <Import Project="..\..\src\SansIo.props" />
              <PropertyGroup>
                <GenerateDocumentationFile>false</GenerateDocumentationFile>
                <IsPackable>false</IsPackable>
              </PropertyGroup>
            </Project>
            """);
        string[] uses =
        [
            "_ = new System.Threading.Thread(() => { });",
            "System.Threading.Monitor.Enter(Gate);",
            "_ = System.Threading.Interlocked.Increment(ref _counter);",
            "_ = System.Threading.Volatile.Read(ref _counter);",
            "_ = System.Threading.Tasks.Task.Delay(1);",
            "using var timer = new System.Threading.Timer(_ => { });",
            "_ = System.DateTime.Now;",
            "_ = System.DateTime.UtcNow;",
            "_ = System.Diagnostics.Stopwatch.GetTimestamp();",
            "_ = System.Environment.TickCount64;",
            "_ = System.Environment.CurrentManagedThreadId;",
            "_ = new System.Random(1).Next();",
            "_ = System.Security.Cryptography.RandomNumberGenerator.GetInt32(10);",
            "_ = System.IO.File.Exists(\"x\");",
            "using var stream = new System.IO.FileStream(\"x\", System.IO.FileMode.Open);",
            "_ = System.IO.Directory.Exists(\"x\");",
            "using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);",
            "System.Console.WriteLine();",
        ];
        const int FirstUseLine = 10;
        var source = "namespace Probe;\n\npublic static class Uses\n{\n    private static readonly object Gate = new();\n    private static long _counter;\n\n    public static void All()\n    {\n"
            + string.Concat(uses.Select(u => "        " + u + "\n")) + "    }\n}\n";
        File.WriteAllText(Path.Combine(dir, "Uses.cs"), source);

        var (exit, output) = Run(dir, "build", "-c", "Release", "-nologo", "-v:q", "-p:NuGetAudit=false");

        Assert.True(exit != 0, $"the build with banned APIs succeeded:\n{output}");
        var flagged = RuleHit().Matches(output).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
        var missed = uses.Where((u, i) => !flagged.Contains(FirstUseLine + i)).ToList();
        Assert.True(missed.Count == 0, $"not reported as RS0030: {string.Join(" | ", missed)}\nbuild output:\n{output}");
    }

    private static (int Exit, string Output) Run(string directory, params string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var p = Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(8)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet {string.Join(' ', args)} did not finish within 8 minutes:\n{stdout}");
        }

        return (p.ExitCode, stdout + stderr.GetAwaiter().GetResult());
    }

    private static IEnumerable<string> SourceFiles(string directory) =>
        Directory.EnumerateFiles(directory, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));

    internal static string RepositoryRoot()
    {
        var root = AppContext.BaseDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "Serval.sln")))
        {
            root = Path.GetDirectoryName(root);
        }

        Assert.NotNull(root);
        return root;
    }

    [GeneratedRegex(@"(^|[^\w.])(lock\s*\(|async\s|await\s)|\b(Value)?Task\b")]
    private static partial Regex Keywords();

    [GeneratedRegex(@"Uses\.cs\((\d+),\d+\): error RS0030")]
    private static partial Regex RuleHit();
}
