namespace Serval.Runtime;

/// <summary>An action run on the engine thread that completes <paramref name="completion"/> itself, now or later; abandoning it fails the completion.</summary>
internal sealed class ActionWorkItem<T>(Action<EngineDriver> action, TaskCompletionSource<T> completion) : IWorkItem
{
    public void Execute(EngineDriver driver)
    {
        try
        {
            action(driver);
        }
        catch (Exception e)
        {
            completion.TrySetException(e);
        }
    }

    public void Abandon(Exception reason) => completion.TrySetException(reason);
}
