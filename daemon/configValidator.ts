import type { ErrorObject } from 'ajv';
import { createRequire } from 'node:module';
import schema from '../config/schema.json' with { type: 'json' };
import { builtValidator, builtValidatorId, type ConfigValidator } from './builtValidator.ts';
import { nodeCrypto } from './nodeCrypto.ts';

// allErrors: so that an unknown key (a typo) is reported rather than the required key it was meant to be.
// verbose: a pattern error then carries its schema, whose patternMessage says in words what is allowed and why.
export const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: false, verbose: true } as const;

/**
 * The schema's validator: the build (scripts/build.mjs) compiles it once into dist/config/validateConfig.cjs, which
 * the daemon and dockctl load in milliseconds (the bundles hold it); from the sources, or when the schema changed since
 * the build, it is compiled at start (Ajv code generation). Synchronous, so that the build can bundle dockd as
 * CommonJS (no top-level await).
 */
function loadValidator(): ConfigValidator {
  const built = builtValidator();
  if (built && (built.schemaSha === null || built.schemaSha === schemaDigest())) return built.default;
  const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  return new Ajv(AJV_OPTIONS).compile(schema) as ConfigValidator;
}

export function schemaDigest(): string {
  return nodeCrypto().createHash('sha256').update(JSON.stringify(schema)).digest('hex');
}

let validator: ConfigValidator | undefined;

/** Validates `data` against the config schema (filling in its defaults); the validator is loaded at the first call. */
export function validateConfig(data: unknown): { ok: true } | { ok: false; errors: ErrorObject[] } {
  validator ??= loadValidator();
  return validator(data) ? { ok: true } : { ok: false, errors: validator.errors ?? [] };
}

/**
 * What a validated config depends on besides its text: the validator the build generated (the digest of its code,
 * which holds the schema's defaults and the Ajv that generated it), else the schema and Ajv's version. dockctl's cache
 * keeps a config's validated form under it (daemon/parsedConfigCache.ts).
 */
export function validatorId(): string {
  const built = builtValidatorId();
  if (built) return `validator ${built}`;
  const ajv = createRequire(import.meta.url)('ajv/package.json') as { version: string };
  return `schema ${schemaDigest()} ajv ${ajv.version} ${JSON.stringify(AJV_OPTIONS)}`;
}
