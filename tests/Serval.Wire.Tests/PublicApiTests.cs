using System.Runtime.CompilerServices;
using Serval.Testing;
using Xunit;

namespace Serval.Wire.Tests;

/// <summary>
/// The public surface of Serval.Wire must equal <c>PublicApi.txt</c>. After an intended API change, regenerate it with
/// <c>SERVAL_UPDATE_PUBLIC_API=1 dotnet test tests/Serval.Wire.Tests --filter PublicApi</c> and review the diff.
/// </summary>
public sealed class PublicApiTests
{
    [Fact]
    public void Public_api_matches_the_snapshot()
    {
        var actual = PublicApiText.Describe(typeof(Serval.Wire.SalPacketRepr).Assembly);
        var path = Path.Combine(SourceDirectory(), "PublicApi.txt");
        if (Environment.GetEnvironmentVariable("SERVAL_UPDATE_PUBLIC_API") == "1")
        {
            File.WriteAllText(path, actual);
        }

        var expected = File.Exists(path) ? File.ReadAllText(path).ReplaceLineEndings("\n") : "";
        Assert.True(expected == actual, $"The public API changed. Review and regenerate PublicApi.txt (SERVAL_UPDATE_PUBLIC_API=1). Current:\n{actual}");
    }

    private static string SourceDirectory([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
