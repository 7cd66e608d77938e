using System.Net.Http;
using Serval.Stack;

namespace Serval.AspNetCore;

/// <summary>
/// Retries an idempotent request without a body on a new Serval connection when the one it was sent on died without an
/// answer — the replica's host stopped answering (user timeout), reset the connection, or refused it — so that the
/// retry's SYN is resolved again (through a service router: to a replica still registered). See docs/aspnetcore.md.
/// </summary>
internal sealed class ServalFailoverHandler : DelegatingHandler
{
    private readonly int _retries;

    public ServalFailoverHandler(HttpMessageHandler inner, int retries)
        : base(inner) => _retries = retries;

    /// <summary>A handler for <c>IHttpClientFactory</c>'s pipeline (the factory sets the inner handler).</summary>
    public ServalFailoverHandler(int retries) => _retries = retries;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (attempt < _retries && IsRetryable(request) && ReplicaGone(e))
            {
                // The next attempt opens a new connection: the dead one failed and left the pool.
            }
        }
    }

    private static bool IsRetryable(HttpRequestMessage request) =>
        request.Content is null
        && (request.Method == HttpMethod.Get || request.Method == HttpMethod.Head || request.Method == HttpMethod.Options
            || request.Method == HttpMethod.Put || request.Method == HttpMethod.Delete || request.Method == HttpMethod.Trace);

    private static bool ReplicaGone(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is ServalException s)
            {
                return s.Error is ServalError.TimedOut or ServalError.ConnectionReset or ServalError.ConnectionRefused;
            }
        }

        return false;
    }
}
