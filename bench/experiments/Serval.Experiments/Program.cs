using Serval.Experiments;

// The paper's experiments (docs/evaluation.md): one command each, run by bench/run.sh paper.
//   serval-experiments NAME [--out DIR] [options]   runs one experiment; its last line is its summary
// An experiment may start this program again inside a namespace in a role of its own (see Experiment.Roles).
// Each experiment adds itself here, one line each.
var experiments = new List<Experiment>
{
    new Fig7WebService(),
    new Fig8KeyValue(),
    new Fig9InterfaceBalancing(),
    new Fig10HostMove(),
};

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.Error.WriteLine("usage: serval-experiments NAME [--out DIR] [options]");
    Console.Error.WriteLine("  names: " + string.Join(' ', experiments.Select(e => e.Name)));
    return args.Length == 0 ? 2 : 0;
}

foreach (var experiment in experiments)
{
    if (experiment.Roles.TryGetValue(args[0], out var role))
    {
        return await role(args[1..]);
    }
}

var chosen = experiments.FirstOrDefault(e => e.Name == args[0]);
if (chosen is null)
{
    Console.Error.WriteLine($"unknown experiment '{args[0]}'; names: " + string.Join(' ', experiments.Select(e => e.Name)));
    return 2;
}

var options = ExperimentOptions.Parse(args[1..]);
return await chosen.RunAsync(options);
