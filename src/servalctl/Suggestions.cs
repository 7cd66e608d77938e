using System.CommandLine;
using System.CommandLine.Parsing;

namespace Serval.Cli;

/// <summary>
/// "Did you mean …?" for a mistyped command or option: the names valid where the unknown token stood (the
/// subcommands and options of the command parsed so far, the recursive ones of its parents included) within a small
/// edit distance, or that the token is a prefix of.
/// </summary>
internal static class Suggestions
{
    /// <summary>The closest valid names for <paramref name="token"/> under <paramref name="command"/>, best first.</summary>
    public static IReadOnlyList<string> For(string token, Command command, IEnumerable<Command> parents)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var isOption = token.StartsWith('-');
        if (isOption)
        {
            foreach (var o in command.Options.Concat(parents.SelectMany(p => p.Options.Where(o => o.Recursive))))
            {
                if (!o.Hidden)
                {
                    names.Add(o.Name);
                    names.UnionWith(o.Aliases);
                }
            }
        }
        else
        {
            foreach (var c in command.Subcommands)
            {
                if (!c.Hidden)
                {
                    names.Add(c.Name);
                    names.UnionWith(c.Aliases);
                }
            }
        }

        var limit = Math.Max(1, token.TrimStart('-').Length / 3);
        return [.. names
            .Select(n => (Name: n, Distance: Distance(token, n)))
            .Where(x => x.Distance <= limit || (token.TrimStart('-').Length >= 2 && x.Name.StartsWith(token, StringComparison.Ordinal)))
            .OrderBy(x => x.Distance)
            .ThenBy(x => x.Name, StringComparer.Ordinal)
            .Select(x => x.Name)
            .Take(3)];
    }

    /// <summary>
    /// The error lines to print for a failed parse. When a mistyped command got a suggestion, only that line: the
    /// parser's other complaints ("Unrecognized command or argument 'list'" for the words after it, "Required command
    /// was not provided") follow from the one wrong word.
    /// </summary>
    public static IReadOnlyList<string> Lines(ParseResult parse)
    {
        var lines = parse.Errors.Select(e => (Line: Describe(parse, e, out var token), Token: token)).ToList();
        var command = lines.FirstOrDefault(l => l.Token is { } t && !t.StartsWith('-'));
        return command.Token is not null ? [command.Line] : [.. lines.Select(l => l.Line)];
    }

    /// <summary>The parse error line with a suggestion for each unknown token the parser reported.</summary>
    public static string Describe(ParseResult parse, ParseError error) => Describe(parse, error, out _);

    /// <summary>The parse error line with a suggestion; <paramref name="suggestedFor"/> is the token a suggestion was made for, or null.</summary>
    private static string Describe(ParseResult parse, ParseError error, out string? suggestedFor)
    {
        suggestedFor = null;
        var message = error.Message;
        var command = parse.CommandResult.Command;
        var parents = new List<Command>();
        for (var r = parse.CommandResult.Parent; r is not null; r = r.Parent)
        {
            if (r is CommandResult c)
            {
                parents.Add(c.Command);
            }
        }

        foreach (var token in parse.UnmatchedTokens)
        {
            if (message.Contains($"'{token}'", StringComparison.Ordinal) && For(token, command, parents) is { Count: > 0 } names)
            {
                suggestedFor = token;
                return $"{message} Did you mean {string.Join(" or ", names.Select(n => $"'{n}'"))}?";
            }
        }

        return message;
    }

    /// <summary>Damerau-Levenshtein distance (optimal string alignment): a transposition counts as one edit.</summary>
    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
