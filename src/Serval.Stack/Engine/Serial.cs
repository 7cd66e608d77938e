namespace Serval.Stack;

/// <summary>32-bit serial-number arithmetic (RFC 1982) for vernos.</summary>
internal static class Serial
{
    public static bool Lt(uint a, uint b) => (int)(a - b) < 0;

    public static bool Le(uint a, uint b) => (int)(a - b) <= 0;

    public static bool Gt(uint a, uint b) => (int)(a - b) > 0;

    public static bool Ge(uint a, uint b) => (int)(a - b) >= 0;
}
