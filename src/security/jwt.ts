/**
 * JWT verification and issuing (jose). The algorithm is pinned by the config — HS256 with `jwt_secret`,
 * or RS256 with `public_key_file` — and a token must name exactly that algorithm, which is what defeats
 * `alg: none` and HS/RS confusion (an HS256 token "signed" with the public key). Every token needs `sub`
 * and `exp`; `nbf`, `aud` and `iss` are enforced when present or configured.
 *
 * Issued tokens come in pairs: an access token (`token_use: "access"`, lifetime `token_expiry`) and a
 * refresh token (`token_use: "refresh"`, lifetime `refresh_token_expiry`) that can only be exchanged for a
 * new pair, never used to connect.
 */
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { MessagingError } from '../protocol/errors.ts';
import { Identity, parsePermissions, type Permissions } from './permissions.ts';

export type JwtAlgorithm = 'HS256' | 'RS256';

export interface JwtSettings {
  algorithm: JwtAlgorithm;
  /** HS256 shared secret. */
  secret: string;
  /** RS256 keys (PEM files). */
  publicKeyFile: string;
  privateKeyFile: string;
  /** Seconds. */
  tokenExpiry: number;
  refreshTokenExpiry: number;
  /** Required `aud` / `iss` when non-empty; put into issued tokens. */
  audience: string;
  issuer: string;
  /** Seconds of clock skew tolerated on exp/nbf. */
  clockToleranceS?: number;
}

export interface IssuedTokens {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

function readKeyFile(what: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read [security.auth] ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

/** Loads and checks the keys once at start, so a bad key file is a start-up error, not a per-token one. */
export class JwtService {
  private readonly verifyKey: Uint8Array | KeyObject;
  private readonly signKey: Uint8Array | KeyObject | undefined;
  private readonly tolerance: number;

  constructor(private readonly settings: JwtSettings) {
    this.tolerance = settings.clockToleranceS ?? 5;
    if (settings.algorithm === 'HS256') {
      if (settings.secret === '') throw new Error('HS256 JWT authentication needs jwt_secret (JWT_SECRET)');
      this.verifyKey = this.signKey = new TextEncoder().encode(settings.secret);
    } else {
      if (settings.publicKeyFile === '')
        throw new Error('RS256 JWT authentication needs [security.auth] public_key_file');
      let key: KeyObject;
      try {
        key = createPublicKey(readKeyFile('public_key_file', settings.publicKeyFile));
      } catch (err) {
        throw new Error(
          `[security.auth] public_key_file ${settings.publicKeyFile} is not a PEM public key or certificate: ${(err as Error).message}`,
        );
      }
      if (key.asymmetricKeyType !== 'rsa') {
        throw new Error(
          `[security.auth] public_key_file holds a ${key.asymmetricKeyType ?? '?'} key; RS256 needs an RSA key`,
        );
      }
      this.verifyKey = key;
      if (settings.privateKeyFile !== '') {
        try {
          this.signKey = createPrivateKey(readKeyFile('private_key_file', settings.privateKeyFile));
        } catch (err) {
          // Never echo the file's content: it is a secret.
          throw new Error(
            `[security.auth] private_key_file ${settings.privateKeyFile} is not a PEM private key: ${(err as Error).message.split('\n')[0]}`,
          );
        }
      }
    }
  }

  get canIssue(): boolean {
    return this.signKey !== undefined;
  }

  /**
   * Verifies an access token; resolves with who it names. Rejects with AUTH_FAILED, or TOKEN_EXPIRED
   * once `exp` has passed. The messages say what is wrong without repeating the token.
   */
  async verifyAccess(token: string, address: string): Promise<Identity> {
    const payload = await this.verify(token);
    if (payload.token_use === 'refresh') {
      throw new MessagingError(
        'AUTH_FAILED',
        'a refresh token cannot be used to connect; exchange it at POST /v1/auth/token',
      );
    }
    return this.identityOf(payload, address);
  }

  /** Verifies a refresh token and returns its subject and permissions for a new pair. */
  async verifyRefresh(token: string): Promise<{ subject: string; permissions: Permissions | undefined }> {
    const payload = await this.verify(token);
    if (payload.token_use !== 'refresh') {
      throw new MessagingError('AUTH_FAILED', 'refresh_token is not a refresh token');
    }
    return { subject: String(payload.sub), permissions: parsePermissions(payload.permissions) };
  }

  /** Signs an access and a refresh token for `subject`. `ttlS` may shorten the access token. */
  async issue(subject: string, permissions: Permissions | undefined, ttlS?: number): Promise<IssuedTokens> {
    const key = this.signKey;
    if (!key) {
      throw new MessagingError(
        'BAD_REQUEST',
        'this server cannot issue RS256 tokens: set [security.auth] private_key_file',
      );
    }
    const accessTtl = Math.max(1, Math.min(ttlS ?? this.settings.tokenExpiry, this.settings.tokenExpiry));
    const refreshTtl = this.settings.refreshTokenExpiry;
    const sign = (claims: JWTPayload, ttl: number): Promise<string> => {
      let jwt = new SignJWT(claims)
        .setProtectedHeader({ alg: this.settings.algorithm, typ: 'JWT' })
        .setSubject(subject)
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
        .setJti(randomBytes(12).toString('base64url'));
      if (this.settings.audience) jwt = jwt.setAudience(this.settings.audience);
      if (this.settings.issuer) jwt = jwt.setIssuer(this.settings.issuer);
      return jwt.sign(key);
    };
    const extra = permissions ? { permissions: permissions as JWTPayload[string] } : {};
    return {
      access_token: await sign({ token_use: 'access', ...extra }, accessTtl),
      token_type: 'Bearer',
      expires_in: accessTtl,
      refresh_token: await sign({ token_use: 'refresh', ...extra }, refreshTtl),
      refresh_expires_in: refreshTtl,
    };
  }

  private identityOf(payload: JWTPayload, address: string): Identity {
    const subject = String(payload.sub).slice(0, 256);
    const expiresAt = typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
    return new Identity(subject, 'jwt', parsePermissions(payload.permissions), expiresAt, address);
  }

  private async verify(token: string): Promise<JWTPayload> {
    if (typeof token !== 'string' || token.length === 0) {
      throw new MessagingError('AUTH_REQUIRED', 'authentication is required: send a token');
    }
    // A JWT of tens of kilobytes is an attack, not a credential; refuse before parsing it.
    if (token.length > 16 * 1024) throw new MessagingError('AUTH_FAILED', 'the token is too long');
    try {
      const { payload } = await jwtVerify(token, this.verifyKey, {
        algorithms: [this.settings.algorithm],
        requiredClaims: ['exp', 'sub'],
        clockTolerance: this.tolerance,
        ...(this.settings.audience ? { audience: this.settings.audience } : {}),
        ...(this.settings.issuer ? { issuer: this.settings.issuer } : {}),
      });
      return payload;
    } catch (err) {
      throw tokenError(err);
    }
  }
}

/** Maps jose's errors to catalogue codes with a reason a client can act on. */
function tokenError(err: unknown): MessagingError {
  if (err instanceof MessagingError) return err;
  if (err instanceof joseErrors.JWTExpired) {
    return new MessagingError(
      'TOKEN_EXPIRED',
      'the token has expired; get a new one (POST /v1/auth/token with a refresh token)',
    );
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return new MessagingError(
      'AUTH_FAILED',
      `the token was refused: claim "${err.claim}" ${err.reason === 'check_failed' ? 'is not acceptable' : err.reason.replaceAll('_', ' ')}`,
    );
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) {
    return new MessagingError(
      'AUTH_FAILED',
      'the token was refused: its signature algorithm is not the one this server accepts',
    );
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new MessagingError('AUTH_FAILED', 'the token was refused: bad signature');
  }
  if (err instanceof joseErrors.JOSEError) {
    return new MessagingError(
      'AUTH_FAILED',
      `the token was refused: ${err.code === 'ERR_JWT_INVALID' || err.code === 'ERR_JWS_INVALID' ? 'malformed token' : err.code}`,
    );
  }
  return new MessagingError('AUTH_FAILED', 'the token was refused: malformed token');
}
