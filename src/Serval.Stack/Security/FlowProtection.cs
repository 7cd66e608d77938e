namespace Serval.Stack;

/// <summary>How a flow's packets are protected (docs/security.md).</summary>
public enum FlowProtection
{
    /// <summary>Ordinary flow: no key exchange, nothing on the wire changes.</summary>
    None = 0,

    /// <summary>Every packet carries an AES-GCM tag over its SAL header, transport header and payload (payload in clear).</summary>
    Authenticated = 1,

    /// <summary>As <see cref="Authenticated"/>, and the payload is encrypted (AEAD).</summary>
    Encrypted = 2,
}
