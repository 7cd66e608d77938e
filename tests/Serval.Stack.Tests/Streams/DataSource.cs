namespace Serval.Stack.Tests.Streams;

/// <summary>A deterministic pseudo-random byte stream (xorshift64*), independent of how it is chunked.</summary>
internal sealed class DataSource
{
    private ulong _state;
    private ulong _word;
    private int _available;

    public DataSource(ulong seed) => _state = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;

    public void Fill(Span<byte> destination)
    {
        for (var i = 0; i < destination.Length; i++)
        {
            if (_available == 0)
            {
                _state ^= _state >> 12;
                _state ^= _state << 25;
                _state ^= _state >> 27;
                _word = _state * 0x2545F4914F6CDD1DUL;
                _available = 8;
            }

            destination[i] = (byte)_word;
            _word >>= 8;
            _available--;
        }
    }
}
