using System.Diagnostics;
using System.Globalization;

namespace Serval.Experiments;

/// <summary>
/// What a <c>bulk-client</c> (<see cref="BulkRoles"/>) reports: its samples (time, bytes read so far, the longest pause
/// between reads in the interval and when it ended) and its final byte count and hash. Times are seconds from a zero
/// timestamp the experiment chooses (both processes read the same monotonic clock).
/// </summary>
internal sealed class ReceiverTrace
{
    private readonly List<(long Timestamp, long Bytes, double GapMs, long GapEnd)> _samples = [];
    private readonly Task _pump;
    private string? _done;

    private ReceiverTrace(RoleProcess client) => _pump = Task.Run(async () =>
    {
        while (await client.ReadLineAsync(TimeSpan.FromMinutes(10)) is { } line)
        {
            var w = line.Split(' ');
            if (w[0] == "sample" && w.Length == 5)
            {
                lock (_samples)
                {
                    _samples.Add((long.Parse(w[1], CultureInfo.InvariantCulture), long.Parse(w[2], CultureInfo.InvariantCulture), long.Parse(w[3], CultureInfo.InvariantCulture) / 1000.0, long.Parse(w[4], CultureInfo.InvariantCulture)));
                }
            }
            else if (w[0] == "done")
            {
                Volatile.Write(ref _done, line);
                return;
            }
        }
    });

    /// <summary>The bytes read by the end of the stream (null until the stream ended).</summary>
    public long? FinalBytes => Volatile.Read(ref _done) is { } d ? long.Parse(d.Split(' ')[1], CultureInfo.InvariantCulture) : null;

    /// <summary>The SHA-256 of everything read (null until the stream ended).</summary>
    public string? FinalHash => Volatile.Read(ref _done)?.Split(' ')[2];

    /// <summary>Follows a client's output from now on (its <c>connected</c> line already read).</summary>
    public static ReceiverTrace Follow(RoleProcess client) => new(client);

    /// <summary>Waits until the client has reported the end of its stream; false after <paramref name="limit"/>.</summary>
    public async Task<bool> WaitDoneAsync(TimeSpan limit) => await Task.WhenAny(_pump, Task.Delay(limit)) == _pump && _done is not null;

    /// <summary>Seconds from <paramref name="zero"/> to <paramref name="timestamp"/>.</summary>
    public static double Seconds(long zero, long timestamp) => (double)(timestamp - zero) / Stopwatch.Frequency;

    /// <summary>Throughput (Mbit/s) between consecutive samples, at each sample's time (s from <paramref name="zero"/>), from 0 on.</summary>
    public List<(double Time, double Mbps)> Throughput(long zero)
    {
        var s = Snapshot();
        var result = new List<(double, double)>();
        for (var i = 1; i < s.Length; i++)
        {
            var t = Seconds(zero, s[i].Timestamp);
            var dt = Seconds(s[i - 1].Timestamp, s[i].Timestamp);
            if (t >= 0 && dt > 0)
            {
                result.Add((t, (s[i].Bytes - s[i - 1].Bytes) * 8 / dt / 1e6));
            }
        }

        return result;
    }

    /// <summary>Mean throughput (Mbit/s) from <paramref name="from"/> to <paramref name="to"/> seconds after <paramref name="zero"/>.</summary>
    public double MeanMbps(long zero, double from, double to)
    {
        var bytes = BytesAt(zero, to) - BytesAt(zero, from);
        return to > from ? bytes * 8 / (to - from) / 1e6 : 0;
    }

    /// <summary>
    /// The longest pause in delivery that ended after <paramref name="from"/> seconds: its length (ms) and the time it
    /// ended (s); (0, from) when there were no samples.
    /// </summary>
    public (double GapMs, double EndedAt) LongestPauseAfter(long zero, double from)
    {
        var best = (0.0, from);
        foreach (var (_, _, gap, end) in Snapshot())
        {
            var ended = Seconds(zero, end);
            if (ended >= from && gap > best.Item1)
            {
                best = (gap, ended);
            }
        }

        return best;
    }

    private (long Timestamp, long Bytes, double GapMs, long GapEnd)[] Snapshot()
    {
        lock (_samples)
        {
            return [.. _samples];
        }
    }

    /// <summary>Bytes read by time <paramref name="t"/> (s after <paramref name="zero"/>), interpolated between samples.</summary>
    private double BytesAt(long zero, double t)
    {
        var s = Snapshot();
        if (s.Length == 0)
        {
            return 0;
        }

        for (var i = 1; i < s.Length; i++)
        {
            var t1 = Seconds(zero, s[i].Timestamp);
            if (t1 >= t)
            {
                var t0 = Seconds(zero, s[i - 1].Timestamp);
                var f = t1 > t0 ? Math.Clamp((t - t0) / (t1 - t0), 0, 1) : 1;
                return s[i - 1].Bytes + (f * (s[i].Bytes - s[i - 1].Bytes));
            }
        }

        return s[^1].Bytes;
    }
}
