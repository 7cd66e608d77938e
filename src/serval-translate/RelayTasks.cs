namespace Serval.Translate;

internal static class RelayTasks
{
    /// <summary>How long stopping a translator waits for its reset relays to end.</summary>
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Waits for the relays to end, at most <see cref="StopTimeout"/>; they never throw (each catches its own failure).</summary>
    public static async Task WaitBoundedAsync(Task[] relays)
    {
        try
        {
            await Task.WhenAll(relays).WaitAsync(StopTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Relays whose peer does not react keep their reset sockets until the process ends.
        }
    }
}
