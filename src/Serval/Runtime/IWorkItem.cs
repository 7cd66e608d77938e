namespace Serval.Runtime;

/// <summary>Something an application thread asks the engine thread to do.</summary>
internal interface IWorkItem
{
    /// <summary>Runs on the engine thread.</summary>
    void Execute(EngineDriver driver);

    /// <summary>The host stopped before the item ran: complete whatever waits on it with <paramref name="reason"/>.</summary>
    void Abandon(Exception reason);
}
