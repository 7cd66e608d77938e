using Serval.Stack;
using Serval.Wire;

namespace Serval;

/// <summary>
/// Key files of self-certifying serviceIDs (docs/security.md): text with the serviceID, its prefix and the Ed25519
/// private key in PEM (<see cref="ServiceKey.ToText"/>), readable by its owner only (mode 0600).
/// </summary>
public static class ServiceKeyFile
{
    /// <summary>The only permissions a key file may have on Unix.</summary>
    public const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Creates a new key under <paramref name="prefix"/> (at most 128 bits) and writes it to <paramref name="path"/>
    /// with mode 0600. Refuses to overwrite an existing file.
    /// </summary>
    /// <exception cref="IOException">The file exists or cannot be written.</exception>
    public static ServiceKey Create(string path, ServicePrefix prefix)
    {
        var key = ServiceKey.Create(prefix, Runtime.CryptoRandomSource.Instance);
        try
        {
            Save(path, key);
        }
        catch
        {
            key.Dispose();
            throw;
        }

        return key;
    }

    /// <summary>Writes <paramref name="key"/> to a new file <paramref name="path"/> with mode 0600.</summary>
    /// <exception cref="IOException">The file exists or cannot be written.</exception>
    public static void Save(string path, ServiceKey key)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(key);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = Mode;
        }

        using var stream = new FileStream(path, options);
        using var writer = new StreamWriter(stream);
        writer.Write(key.ToText());
    }

    /// <summary>
    /// Reads a key file. Fails with a message that names the file and the problem: missing, readable or writable by
    /// group or others (on Unix), not a key file, or a serviceID that its key and prefix do not make.
    /// </summary>
    /// <exception cref="ServiceKeyFileException">The file is missing, too open, or its contents are wrong.</exception>
    public static ServiceKey Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new ServiceKeyFileException(path, "no such file");
        }

        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & ~(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute)) != 0)
            {
                throw new ServiceKeyFileException(path, $"mode {Octal(mode)} lets others read or change the key; it must be 0600 (chmod 600 {path})");
            }
        }

        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServiceKeyFileException(path, e.Message);
        }

        if (!ServiceKey.TryParse(text, out var key, out var error))
        {
            throw new ServiceKeyFileException(path, error!);
        }

        return key!;
    }

    private static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0x1FF, 8);
}

/// <summary>A service key file could not be used; the message names the file and why.</summary>
public sealed class ServiceKeyFileException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/> with <paramref name="reason"/>.</summary>
    public ServiceKeyFileException(string path, string reason)
        : base($"Service key file {path}: {reason}.")
    {
        Path = path;
        Reason = reason;
    }

    /// <summary>The key file.</summary>
    public string Path { get; }

    /// <summary>What is wrong with it.</summary>
    public string Reason { get; }
}
