import type { ErrorObject } from 'ajv';
import schema from '../config/schema.json' with { type: 'json' };

export interface ConfigValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

// allErrors: so that an unknown key (a typo) is reported rather than the required key it was meant to be.
// verbose: a pattern error then carries its schema, whose patternMessage says in words what is allowed and why.
export const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: false, verbose: true } as const;

/**
 * The schema's validator: the build (scripts/build.mjs) compiles it once into dist/config/validateConfig.js, which
 * the daemon and dockctl load in milliseconds; from the sources it is compiled at start (Ajv code generation).
 */
async function loadValidator(): Promise<ConfigValidator> {
  try {
    const built = await import(new URL('../config/validateConfig.js', import.meta.url).href);
    if (built.schemaSha === (await schemaDigest())) return built.default as ConfigValidator;
  } catch {
    // not built: compile below
  }
  const { Ajv } = await import('ajv');
  return new Ajv(AJV_OPTIONS).compile(schema) as ConfigValidator;
}

export async function schemaDigest(): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex');
}

export const validateConfig: ConfigValidator = await loadValidator();
