using System.Globalization;
using Serval.Wire;

namespace Serval.Resolution;

/// <summary>
/// Answers from a text file of services and their addresses (docs/resolution.md, "Static file"), one service per line:
/// <code>
/// # SERVICE              TARGET [TARGET …]     (TARGET: address[:port][*weight])
/// shop.web               10.0.0.2 10.0.0.3:54325*2
/// 0x5b1f/16              [fd00::2]:54325
/// </code>
/// A SERVICE is a serviceID (64 hex digits, <c>0x</c> and hex digits, or a decimal number) or a name (hashed with
/// <see cref="ServiceId.FromName(string)"/>), optionally followed by <c>/BITS</c> for a prefix; a serviceID resolves to
/// the longest listed prefix that contains it. A port of 0 or none means the UDP default (54325); the weight
/// defaults to 1. The file is read again when it changes: 100 ms after the last change the watcher reports (so that a
/// file being written is read once complete), and at a lookup whose check of the time stamp and size finds a change.
/// A version that does not parse is reported (<see cref="LastError"/>) and the previous one stays in use. Replace the
/// file atomically (write another file, rename it over this one) so that a half-written version is never read.
/// </summary>
public sealed class StaticFileResolver : IAsyncServiceResolver, IDisposable
{
    private readonly object _gate = new();
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(100);
    private readonly FileSystemWatcher? _watcher;
    private readonly Timer _settle;
    private Dictionary<ServicePrefix, ResolverTarget[]> _map = [];
    private int[] _lengths = [];
    private (DateTime Written, long Length) _stamp;
    private Exception? _lastError;

    /// <summary>Reads <paramref name="path"/> and starts watching it.</summary>
    /// <param name="path">The file.</param>
    /// <param name="ttl">How long answers are used before being asked again (default 60 s; a change of the file also ends them).</param>
    /// <exception cref="FormatException">A line does not parse (the message names the line).</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public StaticFileResolver(string path, TimeSpan? ttl = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
        Ttl = ttl ?? TimeSpan.FromSeconds(60);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(Ttl, TimeSpan.Zero, nameof(ttl));
        Load(throwOnError: true);
        _settle = new Timer(_ => Reload(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        try
        {
            _watcher = new FileSystemWatcher(System.IO.Path.GetDirectoryName(Path)!, System.IO.Path.GetFileName(Path))
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.FileName | NotifyFilters.CreationTime,
            };
            _watcher.Changed += (_, _) => _settle.Change(Settle, Timeout.InfiniteTimeSpan);
            _watcher.Created += (_, _) => _settle.Change(Settle, Timeout.InfiniteTimeSpan);
            _watcher.Renamed += (_, _) => _settle.Change(Settle, Timeout.InfiniteTimeSpan);
            _watcher.EnableRaisingEvents = true;
        }
        catch (Exception e) when (e is IOException or ArgumentException or PlatformNotSupportedException or UnauthorizedAccessException)
        {
            _watcher = null; // the time stamp check at each lookup still notices changes
        }
    }

    /// <summary>The file (full path).</summary>
    public string Path { get; }

    /// <summary>How long an answer is used.</summary>
    public TimeSpan Ttl { get; }

    /// <summary>Number of services (prefixes) listed.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _map.Count;
            }
        }
    }

    /// <summary>Why the last reading of a changed file failed (its previous contents stay in use); null after a good one.</summary>
    public Exception? LastError
    {
        get
        {
            lock (_gate)
            {
                return _lastError;
            }
        }
    }

    /// <summary>Raised (on a thread-pool thread) after the file was read again because it changed, successfully or not (<see cref="LastError"/>).</summary>
    public event EventHandler? Reloaded;

    /// <inheritdoc/>
    public ValueTask<ResolverAnswer> ResolveAsync(ServiceId service, CancellationToken cancellationToken)
    {
        if (Stamp() != CurrentStamp())
        {
            Reload();
        }

        lock (_gate)
        {
            foreach (var length in _lengths)
            {
                if (_map.TryGetValue(new ServicePrefix(service, length), out var targets))
                {
                    return ValueTask.FromResult(ResolverAnswer.Found(new ServicePrefix(service, length), targets, Ttl));
                }
            }
        }

        return ValueTask.FromResult(ResolverAnswer.NotFound(Ttl));
    }

    /// <summary>Reads the file again if it changed; true when it was read (successfully or not).</summary>
    public bool Reload()
    {
        if (!Load(throwOnError: false))
        {
            return false;
        }

        Reloaded?.Invoke(this, EventArgs.Empty);
        return true;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _watcher?.Dispose();
        _settle.Dispose();
    }

    /// <summary>Parses the file's text into prefixes and targets.</summary>
    /// <exception cref="FormatException">A line does not parse; the message names it.</exception>
    public static IReadOnlyDictionary<ServicePrefix, IReadOnlyList<ResolverTarget>> Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var map = new Dictionary<ServicePrefix, IReadOnlyList<ResolverTarget>>();
        var number = 0;
        foreach (var raw in text.Split('\n'))
        {
            number++;
            var hash = raw.IndexOf('#', StringComparison.Ordinal);
            var line = (hash >= 0 ? raw[..hash] : raw).Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 2)
            {
                throw new FormatException($"line {number}: expected a service and at least one address[:port][*weight]");
            }

            if (fields[0].Contains('@', StringComparison.Ordinal) || !ServiceEndPoint.TryParse(fields[0], out var endPoint))
            {
                throw new FormatException($"line {number}: '{fields[0]}' is not a service (serviceid or name, optionally /bits)");
            }

            var prefix = new ServicePrefix(endPoint.Service, endPoint.PrefixLength);
            if (map.ContainsKey(prefix))
            {
                throw new FormatException($"line {number}: {fields[0]} is listed twice");
            }

            var targets = new List<ResolverTarget>();
            foreach (var field in fields.AsSpan(1))
            {
                targets.Add(ParseTarget(field, number));
            }

            map.Add(prefix, targets);
        }

        return map;
    }

    private static ResolverTarget ParseTarget(string field, int number)
    {
        uint weight = 1;
        var star = field.LastIndexOf('*');
        var address = star >= 0 ? field[..star] : field;
        if (star >= 0 && (!uint.TryParse(field.AsSpan(star + 1), NumberStyles.None, CultureInfo.InvariantCulture, out weight) || weight is 0 or > int.MaxValue))
        {
            throw new FormatException($"line {number}: '{field}': the weight after * must be 1 to 2147483647");
        }

        try
        {
            var a = LinkAddress.Parse(address);
            if (a.ToIPAddress().Equals(System.Net.IPAddress.Any) || a.ToIPAddress().Equals(System.Net.IPAddress.IPv6Any))
            {
                throw new FormatException("a wildcard address is no next hop");
            }

            return new ResolverTarget(a, weight);
        }
        catch (FormatException e)
        {
            throw new FormatException($"line {number}: '{field}' is not address[:port][*weight]: {e.Message}", e);
        }
    }

    /// <summary>Reads the file if its stamp changed (always the first time); false when it had not changed.</summary>
    private bool Load(bool throwOnError)
    {
        var stamp = CurrentStamp();
        lock (_gate)
        {
            if (!throwOnError && stamp == _stamp)
            {
                return false;
            }

            try
            {
                var parsed = Parse(File.ReadAllText(Path));
                _map = parsed.ToDictionary(p => p.Key, p => p.Value.ToArray());
                _lengths = [.. _map.Keys.Select(p => p.Length).Distinct().OrderByDescending(l => l)];
                _lastError = null;
            }
            catch (Exception e) when (!throwOnError && e is FormatException or IOException or UnauthorizedAccessException)
            {
                _lastError = e;
            }

            _stamp = stamp;
            return true;
        }
    }

    private (DateTime Written, long Length) Stamp()
    {
        lock (_gate)
        {
            return _stamp;
        }
    }

    private (DateTime, long) CurrentStamp()
    {
        try
        {
            var info = new FileInfo(Path);
            return info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (DateTime.MinValue, -1);
        }
    }
}
