/**
 * Standard 5-field cron (minute hour day-of-month month day-of-week) with Vixie cron's semantics, on top
 * of croner: when both day fields are restricted the job runs when EITHER matches (`0 12 1 * 1` = the
 * 1st of the month and every Monday); when either day field starts with `*` (`*`, `*\/2`) both must
 * match, as in Vixie's DOM_STAR/DOW_STAR rule. croner's own OR mode also applies OR to `*\/2`, so the
 * mode is chosen per expression here. Times are computed in `timezone` (IANA name, default UTC).
 */
import { Cron } from 'croner';
import { MessagingError } from '../protocol/errors.ts';

export interface CronSchedule {
  readonly expression: string;
  readonly timezone: string;
  /** First run strictly after `after` (epoch ms), or undefined when there is none. */
  next(after: number): number | undefined;
}

export function checkTimezone(tz: string): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return tz;
  } catch {
    throw new MessagingError(
      'BAD_REQUEST',
      `unknown time zone "${tz}" (use an IANA name such as Europe/Paris)`,
    );
  }
}

export function parseCron(expression: string, timezone = 'UTC'): CronSchedule {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) {
    throw new MessagingError(
      'BAD_REQUEST',
      `cron "${expression}" must have 5 fields: minute hour day-of-month month day-of-week`,
    );
  }
  checkTimezone(timezone);
  const [, , dom, , dow] = fields as [string, string, string, string, string];
  const domAndDow = dom.startsWith('*') || dow.startsWith('*');
  let cron: Cron;
  try {
    cron = new Cron(fields.join(' '), { paused: true, timezone, mode: '5-part', domAndDow });
  } catch (err) {
    throw new MessagingError('BAD_REQUEST', `invalid cron "${expression}": ${(err as Error).message}`);
  }
  return {
    expression: fields.join(' '),
    timezone,
    next(after: number): number | undefined {
      return cron.nextRun(new Date(after))?.getTime();
    },
  };
}
