/**
 * Public surface of the configuration layer. See schema.ts for how INI names map onto `ServerConfig`
 * and env.ts for the environment variables and `${VAR}` substitution rules.
 */
export { loadConfig, DEFAULT_CONFIG_PATH } from './load.ts';
export type { LoadConfigOptions, LoadConfigResult, OverrideValue } from './load.ts';
export type { ServerConfig } from './schema.ts';
export { SCHEMA } from './schema.ts';
export type { IntRange, IndexedItem } from './define.ts';
export { formatConfig, REDACTED } from './format.ts';
export { formatProblems, assertNoErrors, ConfigError } from './problems.ts';
export type { ConfigProblem } from './problems.ts';
export { CONFIG_KEYS, CONFIG_SECTIONS } from './metadata.ts';
export type { ConfigKeyMeta, ConfigSectionMeta } from './metadata.ts';
export { ENV_VARS } from './env.ts';
export type { EnvVarSpec, Env } from './env.ts';
export type { ValueSource } from './settings.ts';
export { LOG_LEVELS, AUDIT_EVENTS } from './schema-main.ts';
