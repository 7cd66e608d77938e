namespace Serval.Stack.ControlPlane;

/// <summary>
/// Anti-replay window over one sender's sequence numbers (RFC 4303 §3.4.3 style): the highest accepted number and
/// a bitmap of the <see cref="Size"/> numbers below it. A number is accepted once; numbers older than the window are
/// refused.
/// </summary>
internal sealed class ReplayWindow
{
    /// <summary>Numbers tracked below the highest (reordering tolerated up to this distance).</summary>
    public const int Size = 1024;

    private readonly ulong[] _bits = new ulong[Size / 64];
    private uint _highest;
    private bool _any;

    /// <summary>The highest number accepted so far.</summary>
    public uint Highest => _highest;

    /// <summary>Accepts <paramref name="sequence"/> if it was never seen and is not older than the window.</summary>
    public bool TryAccept(uint sequence)
    {
        if (!_any)
        {
            _any = true;
            _highest = sequence;
            Set(sequence);
            return true;
        }

        if (sequence > _highest)
        {
            var shift = sequence - _highest;
            if (shift >= Size)
            {
                Array.Clear(_bits);
            }
            else
            {
                for (var s = _highest + 1; s != sequence; s++)
                {
                    Clear(s);
                }
            }

            _highest = sequence;
            Set(sequence);
            return true;
        }

        if (_highest - sequence >= Size || IsSet(sequence))
        {
            return false;
        }

        Set(sequence);
        return true;
    }

    private bool IsSet(uint s) => (_bits[(s % Size) / 64] & (1UL << (int)(s % 64))) != 0;

    private void Set(uint s) => _bits[(s % Size) / 64] |= 1UL << (int)(s % 64);

    private void Clear(uint s) => _bits[(s % Size) / 64] &= ~(1UL << (int)(s % 64));
}
