namespace Serval.Cli.Tests;

public sealed class CommandLineTests
{
    [Theory]
    [InlineData("stats")]
    [InlineData("service", "list")]
    [InlineData("flow", "list", "--json")]
    [InlineData("service", "add", "0x10", "drop")]
    public void No_daemon_fails_with_exit_1_naming_the_path(params string[] args)
    {
        var path = Path.Combine(Path.GetTempPath(), $"servald-none-{Guid.NewGuid():N}.sock");
        var result = CliResult.Run([.. args, "--socket", path]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"cannot reach servald at {path}", result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "servce", "list" }, "'service'")]
    [InlineData(new[] { "service", "lst" }, "'list'")]
    [InlineData(new[] { "flow", "list", "--jsn" }, "'--json'")]
    [InlineData(new[] { "rotuer", "status" }, "'router'")]
    [InlineData(new[] { "decode", "--hx" }, "'--hex'")]
    public void A_mistyped_command_or_option_gets_a_suggestion(string[] args, string suggestion)
    {
        var result = CliResult.Run(args);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("id you mean", result.Error, StringComparison.Ordinal);
        Assert.Contains(suggestion, result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "servce", "list" }, "Unrecognized command or argument 'servce'. Did you mean 'service'?")]
    [InlineData(new[] { "service", "lst" }, "Unrecognized command or argument 'lst'. Did you mean 'list'?")]
    public void A_mistyped_command_prints_only_the_suggestion_not_the_parsers_follow_on_errors(string[] args, string line)
    {
        var result = CliResult.Run(args);
        Assert.Equal(2, result.ExitCode);
        Assert.True(
            result.Error == $"servalctl: {line}{Environment.NewLine}Run 'servalctl --help' for usage.{Environment.NewLine}",
            $"expected only the suggestion line; got:{Environment.NewLine}{result.Error}");
    }

    [Fact]
    public void An_unknown_command_far_from_every_name_gets_no_suggestion()
    {
        var result = CliResult.Run("frobnicate");
        Assert.Equal(2, result.ExitCode);
        Assert.DoesNotContain("id you mean", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_socket_nobody_listens_on_fails_with_exit_1()
    {
        var path = Path.Combine(Path.GetTempPath(), $"servald-stale-{Guid.NewGuid():N}.sock");
        using (var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
        {
            s.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
        }

        try
        {
            var result = CliResult.Run("stats", "--socket", path);
            Assert.Equal(1, result.ExitCode);
            Assert.Contains($"cannot reach servald at {path}", result.Error, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("shop.api", null)]
    [InlineData("name=1234", null)]
    [InlineData("shop.api/16", 16)]
    public void Id_prints_the_serviceID_of_a_name_without_a_daemon(string text, int? bits)
    {
        var name = text.Split('/')[0].Replace("name=", string.Empty, StringComparison.Ordinal);
        var prefix = new ServicePrefix(ServiceId.FromName(name), bits ?? ServiceId.Bits);
        var hex = prefix.Id.ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        var result = CliResult.Run("id", text, "--socket", "/nonexistent/servald.sock");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(bits is null ? hex : $"{hex}/{bits}", result.Output.Trim());

        var json = CliResult.Run("id", text, "--json");
        Assert.Equal(name, (string)json.Json["name"]!);
        Assert.Equal(hex, (string)json.Json["id"]!);
    }

    [Fact]
    public void Id_of_an_ID_form_is_that_ID_and_of_a_mistyped_one_a_usage_error()
    {
        var result = CliResult.Run("id", "1234");
        Assert.Equal("000004d2" + new string('0', 56), result.Output.Trim());
        Assert.Null(CliResult.Run("id", "0x10", "--json").Json["name"]);
        Assert.Equal(2, CliResult.Run("id", "12ab").ExitCode);
    }

    [Fact]
    public void No_arguments_is_a_usage_error()
    {
        Assert.Equal(2, CliResult.Run().ExitCode);
    }

    [Fact]
    public void Unknown_command_is_a_usage_error()
    {
        var result = CliResult.Run("frobnicate");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("frobnicate", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_target_is_a_usage_error()
    {
        Assert.Equal(2, CliResult.Run("service", "add", "0x10").ExitCode);
    }

    [Fact]
    public void Help_lists_the_verbs()
    {
        var result = CliResult.Run("--help");
        Assert.Equal(0, result.ExitCode);
        foreach (var verb in new[] { "service", "flow", "stats", "migrate", "decode" })
        {
            Assert.Contains(verb, result.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Decode_prints_the_embedded_sample()
    {
        var result = CliResult.Run("decode");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("CONTROL SYN", result.Output, StringComparison.Ordinal);
        Assert.Contains("Serval packets in", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_of_a_missing_file_fails_with_exit_1()
    {
        var result = CliResult.Run("decode", "/nonexistent/x.pcap");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("no such file", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_with_two_files_is_a_usage_error()
    {
        Assert.Equal(2, CliResult.Run("decode", "a.pcap", "b.pcap").ExitCode);
    }

    [Theory]
    [InlineData("default", 0, "0x0")]
    [InlineData("7", 256, "0x00000007")]
    [InlineData("0x10:8", 8, "0x1")]
    [InlineData("0x10/8", 8, "0x1")]
    [InlineData("default/4", 4, "0x0")]
    public void ServiceID_forms_parse_to_a_prefix(string text, int bits, string shortId)
    {
        Assert.True(ServiceIdArgument.TryParse(text, out var prefix, out var why), why);
        Assert.Equal(bits, prefix.Length);
        Assert.Equal(shortId, prefix.Id.ToString("s", System.Globalization.CultureInfo.InvariantCulture));
    }
}
