using System.Runtime.CompilerServices;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// The public surface of the Serval assembly, as sorted text, must equal <c>PublicApi.txt</c>, and that of the daemon
/// protocol <c>PublicApi.Daemon.Protocol.txt</c>. After an intended API
/// change, regenerate it with <c>SERVAL_UPDATE_PUBLIC_API=1 dotnet test tests/Serval.Tests --filter PublicApi</c>
/// and review the diff.
/// </summary>
public sealed class PublicApiTests
{
    [Theory]
    [InlineData("Serval", "PublicApi.txt")]
    [InlineData("Serval.Daemon.Protocol", "PublicApi.Daemon.Protocol.txt")]
    public void Public_api_matches_the_snapshot(string assembly, string snapshot)
    {
        var type = assembly == "Serval" ? typeof(ServalHost) : typeof(Serval.Daemon.Protocol.DaemonChannel);
        var actual = Serval.Testing.PublicApiText.Describe(type.Assembly);
        var path = Path.Combine(SourceDirectory(), snapshot);
        if (Environment.GetEnvironmentVariable("SERVAL_UPDATE_PUBLIC_API") == "1")
        {
            File.WriteAllText(path, actual);
        }

        var expected = File.Exists(path) ? File.ReadAllText(path).ReplaceLineEndings("\n") : "";
        Assert.True(expected == actual, $"The public API of {assembly} changed. Review and regenerate {snapshot} (SERVAL_UPDATE_PUBLIC_API=1). Current:\n{actual}");
    }

    [Fact]
    public void Public_classes_are_sealed_or_abstract_and_documented()
    {
        foreach (var type in typeof(ServalHost).Assembly.GetExportedTypes())
        {
            if (type.IsClass && !type.IsAbstract && !typeof(Delegate).IsAssignableFrom(type))
            {
                Assert.True(type.IsSealed || type.IsAbstract, $"{type} should be sealed");
            }
        }
    }

    private static string SourceDirectory([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
