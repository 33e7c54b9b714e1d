// provider.mjs: a node oidc-provider 9 issuer for the jwt-authz tests (idp/oidcprovider.go
// starts it). It listens on 127.0.0.1:$PORT with issuer http://127.0.0.1:$PORT and issues
// RFC 9068 JWT access tokens (header typ at+jwt) for the resource https://api.example.com
// through resource indicators, by client credentials and by authorization code, where the
// code flow also returns an ID token. Logins go through oidc-provider's own development
// interactions (any account id, no password). Signing keys are generated at each start:
// RS256, ES256 and Ed25519.
import { generateKeyPairSync } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
export const resource = 'https://api.example.com';

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
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => resource,
      useGrantedResource: async () => true,
      async getResourceServerInfo(_ctx, indicator, client) {
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
