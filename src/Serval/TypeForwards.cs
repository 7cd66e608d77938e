using System.Runtime.CompilerServices;

// ServalException moved to Serval.Stack (beside ServalError) so that the daemon protocol, which Serval and servald
// share, can carry it; applications built against an earlier Serval still find it.
[assembly: TypeForwardedTo(typeof(Serval.ServalException))]
