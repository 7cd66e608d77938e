namespace Serval.Stack.Tests.Streams;

/// <summary>
/// The stored goodput table (Mbit/s) that <see cref="ThroughputTableTests"/> checks against: 100 Mbit/s link,
/// 256 KiB tail-drop queue, loss in both directions, default options, 24 MiB transfer measured after the first
/// 4 MiB. The ceiling is 95.59 Mbit/s: 1388 payload bytes per 1452 bytes on the wire (TCP header with timestamps,
/// SAL base header, IPv4 header).
/// </summary>
internal static class ExpectedThroughputTable
{
    public static readonly double[] DelaysMs = [1, 5, 10, 25];

    public static readonly double[] LossPercents = [0, 0.1, 1, 5];

    // Rows: loss; columns: one-way delay.
    public static readonly double[,] GoodputMbps =
    {
        { 95.59, 95.59, 95.59, 98.48 },
        { 95.59, 50.50, 27.65, 23.22 },
        { 76.33, 17.78, 8.75, 3.29 },
        { 35.53, 7.59, 3.71, 1.55 },
    };
}
