/**
 * TLS settings of the messaging port (`[security.ssl]`, `[network] enable_ssl`), turned into Node's
 * `tls.createServer` options. Files are read once at start; an unreadable or invalid file is a start-up
 * error naming the setting and the file (never the file's content: the key is a secret).
 */
import { createSecureContext, type TlsOptions } from 'node:tls';
import { readFileSync } from 'node:fs';

export interface SslSettings {
  enabled: boolean;
  min_version: 'TLSv1.2' | 'TLSv1.3';
  cert_file: string;
  key_file: string;
  ca_file: string;
  verify_client: boolean;
  cipher_suites: string;
}

function read(setting: string, file: string): Buffer {
  if (file === '') throw new Error(`TLS is enabled but [security.ssl] ${setting} is not set`);
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(
      `cannot read [security.ssl] ${setting} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

/**
 * Options for `tls.createServer`, or undefined when TLS is off. Client certificates are requested when
 * `verify_client` is on but not rejected inside OpenSSL (`rejectUnauthorized: false`): the listener
 * checks `authorized` itself so that it can log why and answer the client in its own protocol.
 */
export function tlsServerOptions(ssl: SslSettings): TlsOptions | undefined {
  if (!ssl.enabled) return undefined;
  const options: TlsOptions = {
    cert: read('cert_file', ssl.cert_file),
    key: read('key_file', ssl.key_file),
    minVersion: ssl.min_version,
    requestCert: ssl.verify_client,
    rejectUnauthorized: false,
  };
  if (ssl.ca_file !== '') options.ca = read('ca_file', ssl.ca_file);
  else if (ssl.verify_client) throw new Error('verify_client = true needs [security.ssl] ca_file');
  // Node takes TLS 1.3 suite names (TLS_AES_…) and OpenSSL cipher strings in the same option.
  if (ssl.cipher_suites.trim() !== '') options.ciphers = ssl.cipher_suites.trim();
  try {
    // Builds the context once now so a key that does not match the certificate fails at start.
    createSecureContext(options);
  } catch (err) {
    throw new Error(`invalid TLS configuration ([security.ssl]): ${(err as Error).message.split('\n')[0]}`);
  }
  return options;
}
