// provider.mjs: a node oidc-provider 9 issuer for the jwt-authz tests (idp/oidcprovider.go
// starts it). It listens on 127.0.0.1:$PORT with issuer http://127.0.0.1:$PORT and issues
// RFC 9068 JWT access tokens (header typ at+jwt) for the resource https://api.example.com
// through resource indicators, by client credentials and by authorization code, where the
// code flow also returns an ID token. Logins go through oidc-provider's own development
// interactions (any account id, no password). Signing keys are generated at each start:
// RS256, ES256 and Ed25519.
//
// Further resources and clients exercise the other kinds of access token (idp/oidcprovider.go
// passes the resource servers' public keys in the environment):
//   https://opaque.example.com   opaque access tokens, for introspection (and revocation);
//   https://enc-rsa.example.com  nested JWTs encrypted to ENC_RSA_PUBLIC (RSA-OAEP-256, A256GCM);
//   https://enc-ec.example.com   nested JWTs encrypted to ENC_EC_PUBLIC (ECDH-ES, A128CBC-HS256);
//   svc-dpop                     DPoP-bound access tokens only (cnf.jkt);
//   svc-mtls                     certificate-bound access tokens (cnf.x5t#S256); the client
//                                certificate is read from the x-client-cert header (a URL-encoded
//                                PEM, as a TLS-terminating proxy in front would set it);
//   rs.example.com               the resource server introspecting with client_secret_basic;
//   rs-jwt.example.com           the same with private_key_jwt, its keys RS_JWT_JWKS.
import { X509Certificate, createPublicKey, generateKeyPairSync } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
export const resource = 'https://api.example.com';
const opaqueResource = 'https://opaque.example.com';

// The resource servers that want their access tokens encrypted, and how.
const encrypted = {
  'https://enc-rsa.example.com': { alg: 'RSA-OAEP-256', enc: 'A256GCM', key: createPublicKey(process.env.ENC_RSA_PUBLIC) },
  'https://enc-ec.example.com': { alg: 'ECDH-ES', enc: 'A128CBC-HS256', key: createPublicKey(process.env.ENC_EC_PUBLIC) },
};

function key(type, options, alg, kid) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, kid, use: 'sig' };
}

const keys = [
  key('rsa', { modulusLength: 2048 }, 'RS256', 'rs256-1'),
  key('ec', { namedCurve: 'P-256' }, 'ES256', 'es256-1'),
  key('ed25519', {}, 'EdDSA', 'ed25519-1'),
];

// The signing alg of each client's access tokens (default RS256).
const accessTokenAlg = { 'svc-es256': 'ES256', 'svc-eddsa': 'EdDSA' };

const service = (id) => ({
  client_id: id, client_secret: `${id}-secret`, grant_types: ['client_credentials'],
  redirect_uris: [], response_types: [], scope: 'read write',
});

const provider = new Provider(issuer, {
  clients: [
    service('svc.example.com'),
    service('svc-es256'),
    service('svc-eddsa'),
    { ...service('svc-dpop'), dpop_bound_access_tokens: true },
    { ...service('svc-mtls'), tls_client_certificate_bound_access_tokens: true },
    service('rs.example.com'),
    {
      ...service('rs-jwt.example.com'), client_secret: undefined,
      token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256',
      jwks: JSON.parse(process.env.RS_JWT_JWKS),
    },
    {
      client_id: 'web-app', client_secret: 'web-app-secret',
      grant_types: ['authorization_code'], response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'], scope: 'openid email read write',
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  jwks: { keys },
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA'] },
  scopes: ['openid', 'email', 'read', 'write'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      claims: async () => ({ sub: id, email: `${id}@example.com`, email_verified: true }),
    };
  },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    dPoP: { enabled: true },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      getCertificate(ctx) {
        const pem = ctx.get('x-client-cert');
        return pem ? new X509Certificate(decodeURIComponent(pem)) : undefined;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => resource,
      useGrantedResource: async () => true,
      async getResourceServerInfo(_ctx, indicator, client) {
        if (indicator === opaqueResource) {
          return { scope: 'read write', audience: indicator, accessTokenTTL: 600, accessTokenFormat: 'opaque' };
        }
        if (encrypted[indicator]) {
          return {
            scope: 'read write', audience: indicator, accessTokenTTL: 600, accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' }, encrypt: encrypted[indicator] },
          };
        }
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope: 'read write',
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: accessTokenAlg[client.clientId] ?? 'RS256' } },
        };
      },
    },
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
