using Serval.Wire;
using Xunit;

namespace Serval.Cli.Tests;

/// <summary><c>servalctl id new|show</c> and the key files behind them (docs/security.md, docs/servalctl.md).</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class IdKeyCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("serval-keys-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_new_key_file_is_private_and_shows_its_self_certifying_serviceID()
    {
        var path = Path.Combine(_dir, "svc.key");
        var made = CliResult.Run("id", "new", "--prefix", "0x5e1f/16", "--out", path, "--json");
        Assert.True(made.ExitCode == 0, made.ToString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        var id = ServiceId.Parse((string)made.Json["id"]!);
        Assert.True(new ServicePrefix(ServiceId.Parse("0x5e1f"), 16).Contains(id), made.ToString());
        Assert.True(id.IsCertifiedBy(Convert.FromHexString((string)made.Json["public_key"]!), 16), made.ToString());

        var shown = CliResult.Run("id", "show", path);
        Assert.True(shown.ExitCode == 0, shown.ToString());
        Assert.Equal(id.ToString(), shown.Output.Trim());

        using var key = ServiceKeyFile.Load(path);
        Assert.Equal(id, key.ServiceId);

        var again = CliResult.Run("id", "new", "--out", path);
        Assert.True(again.ExitCode == 1 && again.Error.Contains("already exists", StringComparison.Ordinal), again.ToString());
        Assert.Equal(2, CliResult.Run("id", "new", "--prefix", "0x5e1f/200", "--out", Path.Combine(_dir, "x.key")).ExitCode);
    }

    [Fact]
    public void Key_files_with_wrong_permissions_or_contents_are_refused_with_a_clear_error()
    {
        var path = Path.Combine(_dir, "svc.key");
        Assert.Equal(0, CliResult.Run("id", "new", "--out", path).ExitCode);

        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var open = CliResult.Run("id", "show", path);
        Assert.True(open.ExitCode == 1 && open.Error.Contains("mode 0644", StringComparison.Ordinal) && open.Error.Contains("chmod 600", StringComparison.Ordinal), open.ToString());
        var e = Assert.Throws<ServiceKeyFileException>(() => ServiceKeyFile.Load(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);

        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var text = File.ReadAllText(path);
        File.WriteAllText(path, text.Replace("serviceid: ", "serviceid: 0", StringComparison.Ordinal)[..text.IndexOf("-----", StringComparison.Ordinal)]);
        var broken = CliResult.Run("id", "show", path);
        Assert.True(broken.ExitCode == 1 && broken.Error.Contains(path, StringComparison.Ordinal), broken.ToString());

        File.WriteAllText(path, "not a key\n");
        Assert.Contains("unexpected line", Assert.Throws<ServiceKeyFileException>(() => ServiceKeyFile.Load(path)).Message, StringComparison.Ordinal);
        Assert.Contains("no such file", Assert.Throws<ServiceKeyFileException>(() => ServiceKeyFile.Load(path + ".missing")).Message, StringComparison.Ordinal);
    }
}
