/**
 * `messaging auth token | refresh` — tokens from the server's `POST /v1/auth/token` (docs/security.md).
 * `token` needs the API key (`--api-key` or API_KEY); `refresh` trades a refresh token for a new pair.
 * By default only the access token is printed, so `export MESSAGING_TOKEN=$(messaging auth token …)`
 * works; `--json` prints the whole answer including the refresh token.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Command } from 'commander';
import { print, serverFrom, timeoutFrom, type GlobalOptions } from '../connect.ts';
import { CliError, EXIT } from '../errors.ts';
import { collect, examples } from '../format.ts';

interface TokenOptions extends GlobalOptions {
  subject: string;
  apiKey?: string;
  publish?: string[];
  subscribe?: string[];
  queue?: string[];
  stream?: string[];
  task?: string[];
  expiresIn?: string;
  unrestricted?: boolean;
  json?: boolean;
}

interface RefreshOptions extends GlobalOptions {
  json?: boolean;
}

/** The HTTP base of a messaging server URL: the REST API shares the messaging port. */
export function httpBaseOf(server: string): URL {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `tcp://${server}`;
  const url = new URL(text);
  const secure = url.protocol === 'tls:' || url.protocol === 'wss:' || url.protocol === 'https:';
  const port = url.port || '8080';
  return new URL(`${secure ? 'https' : 'http'}://${url.hostname}:${port}`);
}

function pem(option: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${option} ${file}: ${(err as Error).message}`);
  }
}

/** POSTs JSON to the server's REST API with the global TLS options; resolves with status and body. */
function postJson(
  opts: GlobalOptions,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const base = httpBaseOf(serverFrom(opts));
  const text = JSON.stringify(body);
  const secure = base.protocol === 'https:';
  const options = {
    host: base.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(base.port),
    path,
    method: 'POST',
    timeout: timeoutFrom(opts),
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers },
    ...(secure
      ? { ca: pem('--ca', opts.ca), cert: pem('--cert', opts.cert), key: pem('--key', opts.key) }
      : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)(options, (res) => {
      let data = '';
      res.setEncoding('utf8').on('data', (d: string) => (data += d));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) as Record<string, unknown> });
        } catch {
          reject(
            new CliError(`unexpected answer from ${base.origin}${path} (HTTP ${res.statusCode ?? '?'})`),
          );
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutFrom(opts)} ms`)));
    req.on('error', (err) =>
      reject(new CliError(`cannot reach ${base.origin}: ${err.message}`, EXIT.CONNECTION)),
    );
    req.end(text);
  });
}

function failed(res: { status: number; body: Record<string, unknown> }): CliError {
  const code = String(res.body.code ?? res.status);
  const exit = res.status === 401 || res.status === 403 ? EXIT.CONNECTION : EXIT.FAILURE;
  return new CliError(`token refused: ${code}: ${String(res.body.message ?? '')}`, exit);
}

async function runToken(opts: TokenOptions): Promise<void> {
  const apiKey = opts.apiKey ?? process.env['API_KEY'];
  if (!apiKey) throw new CliError('issuing tokens needs the API key: --api-key or API_KEY');
  let permissions: Record<string, string[]> | undefined;
  if (!opts.unrestricted) {
    permissions = {
      publish: opts.publish ?? [],
      subscribe: opts.subscribe ?? [],
      queues: opts.queue ?? [],
      streams: opts.stream ?? [],
      tasks: opts.task ?? [],
    };
  }
  const body: Record<string, unknown> = { grant_type: 'api_key', subject: opts.subject };
  if (permissions) body.permissions = permissions;
  if (opts.expiresIn !== undefined) {
    const n = Number(opts.expiresIn);
    if (!Number.isInteger(n) || n <= 0)
      throw new CliError('--expires-in must be a positive number of seconds');
    body.expires_in = n;
  }
  const res = await postJson(opts, '/v1/auth/token', body, { authorization: `Bearer ${apiKey}` });
  if (res.status !== 200) throw failed(res);
  await print(opts.json ? JSON.stringify(res.body) : String(res.body.access_token));
}

async function runRefresh(refreshToken: string, opts: RefreshOptions): Promise<void> {
  const res = await postJson(opts, '/v1/auth/token', {
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
  });
  if (res.status !== 200) throw failed(res);
  await print(opts.json ? JSON.stringify(res.body) : String(res.body.access_token));
}

export function registerAuth(program: Command): void {
  const auth = program
    .command('auth')
    .description('get tokens from the server (POST /v1/auth/token)')
    .addHelpText(
      'after',
      examples(
        "export MESSAGING_TOKEN=$(messaging auth token --subject billing --publish 'orders.*' --subscribe 'orders.#' --queue orders)",
        'messaging auth token --subject admin --unrestricted --json',
        'messaging auth refresh "$REFRESH_TOKEN"',
      ),
    );

  auth
    .command('token')
    .description('issue an access and a refresh token for a subject (needs API_KEY)')
    .requiredOption('--subject <name>', 'who the token is for (its "sub")')
    .option('--api-key <key>', "the server's API key (env API_KEY)")
    .option('--publish <pattern>', 'topic pattern it may publish to (repeatable)', collect)
    .option('--subscribe <pattern>', 'topic pattern it may subscribe to (repeatable)', collect)
    .option('--queue <name>', 'queue it may use; * for all, prefix* for a prefix (repeatable)', collect)
    .option('--stream <name>', 'stream it may use (repeatable)', collect)
    .option('--task <name>', 'task name it may submit or manage (repeatable)', collect)
    .option('--unrestricted', 'no permissions claim: the token may do everything')
    .option('--expires-in <seconds>', 'shorter lifetime than [security.auth] token_expiry')
    .option('--json', 'print the whole answer (access and refresh token, lifetimes)')
    .action(async (_o: unknown, cmd: Command) => runToken(cmd.optsWithGlobals<TokenOptions>()));

  auth
    .command('refresh')
    .description('exchange a refresh token for a new pair')
    .argument('<refresh-token>', 'the refresh_token of an earlier answer')
    .option('--json', 'print the whole answer')
    .action(async (token: string, _o: unknown, cmd: Command) =>
      runRefresh(token, cmd.optsWithGlobals<RefreshOptions>()),
    );
}
