/**
 * `messaging audit verify FILE` — checks the hash chain of an audit log ([audit] log_file). Exits 0 and
 * prints the head hash (the anchor to keep elsewhere) when every line chains; exits 1 and names the
 * first bad line otherwise.
 */
import type { Command } from 'commander';
import { verifyAuditFile } from '../../security/audit.ts';
import { print } from '../connect.ts';
import { CliError } from '../errors.ts';
import { examples } from '../format.ts';

async function runVerify(file: string, opts: { head?: string }): Promise<void> {
  let result;
  try {
    result = await verifyAuditFile(file);
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (!result.ok) throw new CliError(`${file}: line ${result.line} is bad: ${result.reason}`);
  if (opts.head !== undefined && opts.head !== result.head) {
    throw new CliError(
      `${file}: the chain is intact but ends at ${result.head}, not at the expected head ${opts.head} (lines were removed from the end, or the file was rewritten)`,
    );
  }
  await print(`${file}: OK, ${result.lines} line(s), head ${result.head}`);
}

export function registerAudit(program: Command): void {
  const audit = program
    .command('audit')
    .description('audit log tools')
    .addHelpText('after', examples('messaging audit verify /var/log/messaging/audit.log'));
  audit
    .command('verify')
    .description('check the hash chain of an audit log; exit 1 naming the first bad line')
    .argument('<file>', 'the audit log ([audit] log_file)')
    .option('--head <sha256>', 'also require the chain to end at this hash (an anchor kept elsewhere)')
    .action(async (file: string, opts: { head?: string }) => runVerify(file, opts));
}
