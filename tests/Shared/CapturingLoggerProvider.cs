using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Serval.Testing;

/// <summary>Every log line written through a logger factory it is added to, for tests that check what is logged.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<(LogLevel Level, int EventId, string Category, string Message)> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    /// <summary>Whether a line of <paramref name="level"/> contains <paramref name="text"/>.</summary>
    public bool Has(LogLevel level, string text) => Lines.Any(l => l.Level == level && l.Message.Contains(text, StringComparison.Ordinal));

    /// <summary>Every line so far, for failure messages.</summary>
    public string Dump() => string.Join("\n", Lines.Select(l => $"{l.Level} {l.EventId} {l.Category}: {l.Message}"));

    private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Lines.Enqueue((logLevel, eventId.Id, category, formatter(state, exception)));
    }
}
