using System.Reflection;
using Serval.Attached;
using Serval.Backends;
using Serval.Runtime;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// The public types are facades over one backend interface each (docs/api.md, "Embedded and attached"): none holds an
/// engine driver, engine socket state or a daemon object of its own, so no member can branch on the mode.
/// </summary>
public sealed class BackendSplitTests
{
    [Theory]
    [InlineData(typeof(ServalHost))]
    [InlineData(typeof(ServalHostAdministration))]
    [InlineData(typeof(ServalConnection))]
    [InlineData(typeof(ServalStream))]
    [InlineData(typeof(ServalListener))]
    [InlineData(typeof(ServalDatagramSocket))]
    public void A_public_type_holds_no_mode_specific_state(Type type)
    {
        var offending = ModeSpecificFields(type);
        Assert.True(offending.Length == 0, $"{type.Name} holds mode-specific state: {string.Join(", ", offending)}");
    }

    /// <summary>The check sees such state where it is (the backends), so a facade that took it back would fail above.</summary>
    [Theory]
    [InlineData(typeof(Embedded.EmbeddedConnection))]
    [InlineData(typeof(Embedded.EmbeddedHost))]
    [InlineData(typeof(RemoteConnection))]
    [InlineData(typeof(AttachedHost))]
    public void The_check_sees_mode_specific_state_in_a_backend(Type type) =>
        Assert.True(ModeSpecificFields(type).Length > 0, $"no mode-specific field found in {type.Name}: the check would miss one in a public type");

    private static string[] ModeSpecificFields(Type type)
    {
        Type[] modeSpecific =
        [
            typeof(EngineDriver), typeof(ConnectionState), typeof(ListenerState), typeof(DatagramSocketState),
            typeof(DaemonClient), typeof(RemoteConnection), typeof(RemoteListener), typeof(RemoteDatagramSocket),
        ];
        var fields = type.GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public);
        return [.. fields.Where(f => modeSpecific.Any(m => m.IsAssignableFrom(f.FieldType))).Select(f => $"{f.FieldType.Name} {f.Name}")];
    }

    [Fact]
    public void Each_backend_interface_has_an_embedded_and_an_attached_implementation()
    {
        var types = typeof(ServalHost).Assembly.GetTypes();
        foreach (var backend in new[] { typeof(IHostBackend), typeof(IConnectionBackend), typeof(IListenerBackend), typeof(IDatagramSocketBackend) })
        {
            var implementations = types.Where(t => t.IsClass && backend.IsAssignableFrom(t)).Select(t => t.FullName).Order().ToArray();
            Assert.True(
                implementations.Length == 2 && implementations.Count(n => n!.StartsWith("Serval.Embedded.", StringComparison.Ordinal)) == 1
                    && implementations.Count(n => n!.StartsWith("Serval.Attached.", StringComparison.Ordinal)) == 1,
                $"{backend.Name}: expected one implementation in Serval.Embedded and one in Serval.Attached, found [{string.Join(", ", implementations)}]");
        }
    }
}
