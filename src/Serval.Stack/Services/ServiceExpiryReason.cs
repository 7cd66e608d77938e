namespace Serval.Stack.Services;

/// <summary>Why a rule expired.</summary>
public enum ServiceExpiryReason
{
    /// <summary>The rule was not used (resolved) for its idle timeout.</summary>
    Idle,

    /// <summary>The rule reached its hard timeout, counted from when it was added.</summary>
    Hard,
}
