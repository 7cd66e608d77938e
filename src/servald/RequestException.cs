namespace Serval.Daemon;

/// <summary>A control request that cannot be executed; becomes <c>{"ok":false,"error":Code,"message":…}</c>.</summary>
internal sealed class RequestException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}
