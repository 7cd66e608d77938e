using System.Diagnostics;

namespace Serval.Testing;

/// <summary>
/// Waiting for a condition in tests that run on real time (threads, processes, namespaces): poll a probe until it
/// answers, within a bounded time. A timeout fails with what was awaited and the last value seen, so a failure under load
/// says how far things got. Tests wait on a condition, never sleep for a fixed time.
/// </summary>
internal static class Eventually
{
    /// <summary>The bound when none is given.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    private static readonly TimeSpan DefaultPoll = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Polls <paramref name="probe"/> until <paramref name="done"/> holds for its value and returns that value; fails
    /// the test after <paramref name="timeout"/> with <paramref name="what"/> and the last value seen.
    /// </summary>
    public static async Task<T> UntilAsync<T>(Func<ValueTask<T>> probe, Func<T, bool> done, string what, TimeSpan? timeout = null, TimeSpan? poll = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(done);
        var limit = timeout ?? DefaultTimeout;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var seen = await probe().ConfigureAwait(false);
            if (done(seen))
            {
                return seen;
            }

            if (clock.Elapsed >= limit)
            {
                throw new Xunit.Sdk.XunitException($"Timed out after {limit.TotalSeconds:0.#} s waiting for {what}; last seen: {Describe(seen)}.");
            }

            await Task.Delay(poll ?? DefaultPoll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Polls a synchronous <paramref name="probe"/>; see <see cref="UntilAsync{T}(Func{ValueTask{T}}, Func{T, bool}, string, TimeSpan?, TimeSpan?, CancellationToken)"/>.</summary>
    public static Task<T> UntilAsync<T>(Func<T> probe, Func<T, bool> done, string what, TimeSpan? timeout = null, TimeSpan? poll = null, CancellationToken cancellationToken = default) =>
        UntilAsync(() => ValueTask.FromResult(probe()), done, what, timeout, poll, cancellationToken);

    /// <summary>Waits until <paramref name="condition"/> holds; fails with <paramref name="what"/> after the timeout.</summary>
    public static Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null, TimeSpan? poll = null, CancellationToken cancellationToken = default) =>
        UntilAsync(condition, b => b, what, timeout, poll, cancellationToken);

    /// <summary>Waits until the asynchronous <paramref name="condition"/> holds; fails with <paramref name="what"/> after the timeout.</summary>
    public static Task TrueAsync(Func<ValueTask<bool>> condition, string what, TimeSpan? timeout = null, TimeSpan? poll = null, CancellationToken cancellationToken = default) =>
        UntilAsync(condition, b => b, what, timeout, poll, cancellationToken);

    /// <summary>
    /// Polls <paramref name="condition"/> until it holds (true) or <paramref name="timeout"/> passes (false, after one
    /// last look), for callers that assert with a message of their own.
    /// </summary>
    public static async Task<bool> WithinAsync(Func<ValueTask<bool>> condition, TimeSpan timeout, TimeSpan? poll = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (await condition().ConfigureAwait(false))
            {
                return true;
            }

            await Task.Delay(poll ?? DefaultPoll, cancellationToken).ConfigureAwait(false);
        }

        return await condition().ConfigureAwait(false);
    }

    private static string Describe<T>(T value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        _ => value.ToString() ?? "",
    };
}
