import type { ErrorObject } from 'ajv';
import { createRequire } from 'node:module';

export interface ConfigValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

export interface BuiltValidator {
  default: ConfigValidator;
  /** The SHA-256 of the schema it was generated from; null when it was built together with the code loading it. */
  schemaSha: string | null;
}

/**
 * The schema's validator that `npm run build` generated (dist/config/validateConfig.cjs), or null before a build. In
 * the bundles the build replaces this module by one holding the validator itself (scripts/build.mjs), so that it is
 * compiled from the bundle's code cache rather than at every start (≈ 10 ms of `dockctl status`).
 */
export function builtValidator(): BuiltValidator | null {
  try {
    return createRequire(import.meta.url)('../config/validateConfig.cjs') as BuiltValidator;
  } catch {
    return null;
  }
}

/**
 * The SHA-256 of the built validator's code, which the build writes into the bundles (scripts/build.mjs); null from the
 * sources and the plain build.
 */
export function builtValidatorId(): string | null {
  return null;
}
