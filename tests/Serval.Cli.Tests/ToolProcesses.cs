using System.Diagnostics;

namespace Serval.Cli.Tests;

/// <summary>
/// The command-line tools (serval-cat.dll, serval-translate.dll next to the tests) run as child processes: started
/// with redirected output, fed and drained, ended by their process id. Shared by the tools' tests.
/// </summary>
internal static class ToolProcesses
{
    /// <summary>Starts <c>dotnet DLL ARGUMENTS</c> (<paramref name="dll"/> next to the tests) with standard output and error redirected, and standard input when asked.</summary>
    public static Process StartTool(string dll, bool redirectInput, params string[] arguments)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardInput = redirectInput,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, dll));
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"could not start {dll}");
    }

    /// <summary>Kills a process that is still running (by its id, never by name), with its children.</summary>
    public static void EndByPid(Process? p)
    {
        if (p is not null && !p.HasExited)
        {
            p.Kill(entireProcessTree: true); // by this process's id, never by name
        }
    }

    /// <summary>Writes <paramref name="data"/> to the process's standard input in 16 KiB pieces, then closes it.</summary>
    public static async Task WriteAndCloseAsync(Process p, byte[] data, CancellationToken ct)
    {
        var stdin = p.StandardInput.BaseStream;
        for (var offset = 0; offset < data.Length; offset += 16 * 1024)
        {
            await stdin.WriteAsync(data.AsMemory(offset, Math.Min(16 * 1024, data.Length - offset)), ct);
        }

        await stdin.FlushAsync(ct);
        p.StandardInput.Close();
    }

    /// <summary>Everything the process writes to standard output, until it closes it.</summary>
    public static async Task<byte[]> ReadAllAsync(Process p, CancellationToken ct)
    {
        using var all = new MemoryStream();
        await p.StandardOutput.BaseStream.CopyToAsync(all, ct);
        return all.ToArray();
    }

    /// <summary>Reproducible random bytes.</summary>
    public static byte[] RandomData(int size, int seed)
    {
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        return data;
    }
}
