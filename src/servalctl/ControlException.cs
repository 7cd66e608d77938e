namespace Serval.Cli;

/// <summary>servald could not be reached or refused a request; servalctl prints the message and exits with 1.</summary>
internal sealed class ControlException(string message) : Exception(message);
