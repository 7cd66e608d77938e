#pragma warning disable RS0030 // The one audited use of memory-ordering primitives in Serval.Stack (see the summary).

namespace Serval.Stack;

/// <summary>
/// The only memory-ordering operations in Serval.Stack, which is otherwise single-threaded (src/BannedSymbols.txt bans
/// <see cref="Interlocked"/>, <see cref="Volatile"/> and the thread's identity everywhere else). Two things are read
/// from other threads: counters, written on the engine's thread and read by monitoring threads, and the service
/// table, which publishes immutable versions to lock-free readers and refuses a second concurrent writer. Nothing
/// here blocks or waits.
/// </summary>
internal static class CrossThread
{
    /// <summary>Reads with acquire semantics.</summary>
    public static int Read(ref int location) => Volatile.Read(ref location);

    /// <summary>Reads with acquire semantics (never torn).</summary>
    public static long Read(ref long location) => Volatile.Read(ref location);

    /// <summary>Reads a reference with acquire semantics.</summary>
    public static T Read<T>(ref T location)
        where T : class? => Volatile.Read(ref location);

    /// <summary>Writes with release semantics.</summary>
    public static void Write(ref int location, int value) => Volatile.Write(ref location, value);

    /// <summary>Writes with release semantics (never torn).</summary>
    public static void Write(ref long location, long value) => Volatile.Write(ref location, value);

    /// <summary>Publishes a reference with release semantics.</summary>
    public static void Write<T>(ref T location, T value)
        where T : class? => Volatile.Write(ref location, value);

    /// <summary>Adds one atomically; returns the new value.</summary>
    public static int Increment(ref int location) => Interlocked.Increment(ref location);

    /// <summary>Adds one atomically; returns the new value.</summary>
    public static long Increment(ref long location) => Interlocked.Increment(ref location);

    /// <summary>Adds atomically; returns the new value.</summary>
    public static int Add(ref int location, int value) => Interlocked.Add(ref location, value);

    /// <summary>Adds atomically; returns the new value.</summary>
    public static long Add(ref long location, long value) => Interlocked.Add(ref location, value);

    /// <summary>Replaces <paramref name="location"/> with <paramref name="value"/> if it equals <paramref name="comparand"/>; returns the value seen.</summary>
    public static int CompareExchange(ref int location, int value, int comparand) => Interlocked.CompareExchange(ref location, value, comparand);

    /// <summary>Replaces <paramref name="location"/> with <paramref name="value"/> if it equals <paramref name="comparand"/>; returns the value seen.</summary>
    public static long CompareExchange(ref long location, long value, long comparand) => Interlocked.CompareExchange(ref location, value, comparand);

    /// <summary>The calling thread's identity (the service table's single-writer check).</summary>
    public static int CurrentThreadId => Environment.CurrentManagedThreadId;
}
