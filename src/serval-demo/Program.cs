using Serval.Demo;

// serval-demo                              the demo network (README.md)
// serval-demo echo-server ADDRESS SERVICE  one echo host on ADDRESS:54325 (stream and datagram) until stdin closes
// serval-demo echo-attached SOCKET SERVICE the same echo service in an application attached to servald at SOCKET
// serval-demo router ADDRESS SERVICE HOP…  a service router on ADDRESS:54325 forwarding SERVICE to the hops
return args switch
{
    [] => await DemoNetwork.RunAsync(Console.Out, TimeSpan.FromSeconds(16)),
    ["--quick"] => await DemoNetwork.RunAsync(Console.Out, TimeSpan.FromSeconds(8)),
    ["echo-server", var address, var service] => await EchoServerCommand.RunAsync(address, service),
    ["echo-attached", var socket, var service] => await EchoServerCommand.RunAttachedAsync(socket, service),
    ["router", var address, var service, .. var hops] => await RouterCommand.RunAsync(address, service, hops),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: serval-demo [--quick] | serval-demo echo-server ADDRESS SERVICE | serval-demo echo-attached SOCKET SERVICE | serval-demo router ADDRESS SERVICE NEXTHOP...");
    return 2;
}
