namespace Serval.Stack.Tests.Streams;

/// <summary>The stored goodput table (Mbit/s) that <see cref="ThroughputTableTests"/> checks against.</summary>
internal static class ExpectedThroughputTable
{
    public static readonly double[] DelaysMs = [1, 5, 10, 25];

    public static readonly double[] LossPercents = [0, 0.1, 1, 5];

    // Rows: loss; columns: one-way delay.
    public static readonly double[,] GoodputMbps =
    {
        { 1, 1, 1, 1 },
        { 1, 1, 1, 1 },
        { 1, 1, 1, 1 },
        { 1, 1, 1, 1 },
    };
}
