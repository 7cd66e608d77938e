using System.Diagnostics;

namespace Serval.Netns;

/// <summary>
/// A real etcd cluster (the Debian <c>etcd-server</c> package) for a test: one member per given namespace, on the
/// namespace's address, all state in a temporary directory removed on disposal. Members are started and killed by
/// process id; a killed member can be started again on its data. Tests and benchmarks skip with
/// <see cref="SkipReason"/> when etcd is not installed (CI installs it: .ci/run).
/// </summary>
public sealed class EtcdCluster : IAsyncDisposable
{
    private readonly NetNamespace[] _namespaces;
    private readonly string[] _addresses;
    private readonly Process?[] _processes;
    private readonly string _directory;
    private readonly string _initialCluster;

    private EtcdCluster(NetNamespace[] namespaces, string[] addresses)
    {
        _namespaces = namespaces;
        _addresses = addresses;
        _processes = new Process?[namespaces.Length];
        _directory = Directory.CreateTempSubdirectory("serval-etcd-").FullName;
        _initialCluster = string.Join(",", addresses.Select((a, i) => $"m{i}=http://{a}:2380"));
    }

    /// <summary>The etcd binary, or null when it is not installed.</summary>
    public static string? Binary => new[] { "/usr/bin/etcd", "/usr/local/bin/etcd" }.FirstOrDefault(File.Exists);

    /// <summary>The etcdctl binary, or null when it is not installed.</summary>
    public static string? CtlBinary => new[] { "/usr/bin/etcdctl", "/usr/local/bin/etcdctl" }.FirstOrDefault(File.Exists);

    /// <summary>Why etcd tests cannot run here.</summary>
    public static string SkipReason => "etcd is not installed (Debian: apt-get install etcd-server etcd-client; .ci/run installs them)";

    /// <summary>The members' client URLs.</summary>
    public IReadOnlyList<string> ClientUrls => [.. _addresses.Select(a => $"http://{a}:2379")];

    /// <summary>Starts one member per namespace (member i on <paramref name="addresses"/>[i]) and waits until the cluster is healthy.</summary>
    public static async Task<EtcdCluster> StartAsync(NetNamespace[] namespaces, string[] addresses, CancellationToken ct)
    {
        var cluster = new EtcdCluster(namespaces, addresses);
        try
        {
            for (var i = 0; i < namespaces.Length; i++)
            {
                cluster.StartMember(i);
            }

            await cluster.WaitHealthyAsync(Enumerable.Range(0, namespaces.Length), TimeSpan.FromSeconds(30), ct);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts member <paramref name="i"/> (again, on its data directory after <see cref="KillAsync"/>).</summary>
    public void StartMember(int i)
    {
        var a = _addresses[i];
        var dataDir = Path.Combine(_directory, $"m{i}");
        _processes[i] = _namespaces[i].Start(Binary ?? throw new InvalidOperationException(SkipReason), [
            "--name", $"m{i}",
            "--data-dir", dataDir,
            "--listen-client-urls", $"http://{a}:2379",
            "--advertise-client-urls", $"http://{a}:2379",
            "--listen-peer-urls", $"http://{a}:2380",
            "--initial-advertise-peer-urls", $"http://{a}:2380",
            "--initial-cluster", _initialCluster,
            "--initial-cluster-token", "serval-fleet-test",
            "--initial-cluster-state", "new",
            "--heartbeat-interval", "100",
            "--election-timeout", "1000",
            "--logger", "zap",
            "--log-level", "error",
        ]);
        _processes[i]!.BeginOutputReadLine();
        _processes[i]!.BeginErrorReadLine();
    }

    /// <summary>SIGKILL of member <paramref name="i"/> by its process id.</summary>
    public async Task KillAsync(int i)
    {
        if (_processes[i] is { } p)
        {
            if (!p.HasExited)
            {
                p.Kill();
            }

            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await p.WaitForExitAsync(wait.Token);
            _processes[i] = null;
        }
    }

    /// <summary>Waits until each of <paramref name="members"/> reports healthy (asked from inside its namespace).</summary>
    public async Task WaitHealthyAsync(IEnumerable<int> members, TimeSpan limit, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        foreach (var i in members)
        {
            while (true)
            {
                try
                {
                    _namespaces[i].Exec(CtlBinary ?? throw new InvalidOperationException(SkipReason), "--endpoints", $"http://{_addresses[i]}:2379", "--command-timeout", "2s", "endpoint", "health");
                    break;
                }
                catch (NetnsException) when (sw.Elapsed < limit)
                {
                    await Task.Delay(100, ct);
                }
            }
        }
    }

    /// <summary>Kills every member by its process id and removes the data directory.</summary>
    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < _processes.Length; i++)
        {
            try
            {
                await KillAsync(i);
            }
            catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
            {
                // gone already; the namespace's disposal kills what is left by id
            }
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
