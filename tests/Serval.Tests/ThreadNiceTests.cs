using System.Globalization;
using Serval.Links;
using Serval.Testing;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// The engine and receive threads are named and take the nice values of <see cref="ServalHostOptions.EngineThreadNice"/>
/// and <see cref="ServalHostOptions.ReceiveThreadNice"/> (docs/runtime.md, "Threads"), read back from /proc.
/// </summary>
public sealed class ThreadNiceTests
{
    [Fact]
    public async Task Engine_and_receive_threads_take_their_configured_nice_values()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "per-thread nice values are Linux's");
        var ct = TestContext.Current.CancellationToken;
        await using var host = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "nice",
            Links = [new UdpLink(System.Net.IPAddress.Loopback, 0)],
            Engine = TestNet.FastEngine,
            EngineThreadNice = 7,
            ReceiveThreadNice = 9,
        }, ct);

        var threads = await Eventually.UntilAsync(
            () => ValueTask.FromResult(Threads()),
            t => t.Any(x => x.Name.StartsWith("serval engine", StringComparison.Ordinal) && x.Nice == 7)
                && t.Any(x => x.Name.StartsWith("serval rx", StringComparison.Ordinal) && x.Nice == 9),
            "an engine thread at nice 7 and a receive thread at nice 9",
            cancellationToken: ct);
        Assert.Contains(threads, x => x.Name.StartsWith("serval engine", StringComparison.Ordinal) && x.Nice == 7);
    }

    /// <summary>Every thread of this process: its name (comm, at most 15 characters) and nice value (stat field 19).</summary>
    private static List<(string Name, int Nice)> Threads()
    {
        var result = new List<(string, int)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                var name = File.ReadAllText(Path.Combine(dir, "comm")).TrimEnd('\n');
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                result.Add((name, int.Parse(fields[16], CultureInfo.InvariantCulture))); // field 19 overall: 3 is fields[0]
            }
            catch (IOException)
            {
                // The thread ended while we looked.
            }
        }

        return result;
    }
}
