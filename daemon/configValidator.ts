import { createRequire } from 'node:module';
import schema from '../config/schema.json' with { type: 'json' };
import { builtValidator, type ConfigValidator } from './builtValidator.ts';
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

export const validateConfig: ConfigValidator = loadValidator();
