namespace Serval.Stack;

/// <summary>
/// A token bucket whose rate is given at each use (so an option change applies at once): it refills at
/// <c>rate</c> tokens per second up to a burst of <c>rate</c> (at least 1) and starts full.
/// </summary>
internal struct TokenBucket
{
    private double _tokens;
    private TimeSpan? _refilledAt;

    /// <summary>Takes one token at <paramref name="now"/>; false when the bucket is empty.</summary>
    public bool TryTake(double rate, TimeSpan now)
    {
        var burst = Math.Max(1, rate);
        if (_refilledAt is not { } at)
        {
            _tokens = burst;
        }
        else if (now > at)
        {
            _tokens = Math.Min(burst, _tokens + ((now - at).TotalSeconds * rate));
        }

        _refilledAt = _refilledAt is { } last && last > now ? last : now;
        if (_tokens < 1)
        {
            return false;
        }

        _tokens -= 1;
        return true;
    }

    /// <summary>When the bucket was last used (null: never).</summary>
    public readonly TimeSpan? LastUsed => _refilledAt;
}
