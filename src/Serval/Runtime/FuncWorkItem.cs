namespace Serval.Runtime;

/// <summary>A function run on the engine thread whose result completes a task.</summary>
internal sealed class FuncWorkItem<T>(Func<EngineDriver, T> function) : IWorkItem
{
    public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Execute(EngineDriver driver)
    {
        try
        {
            Completion.TrySetResult(function(driver));
        }
        catch (Exception e)
        {
            Completion.TrySetException(e);
        }
    }

    public void Abandon(Exception reason) => Completion.TrySetException(reason);
}
