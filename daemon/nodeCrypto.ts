/**
 * node:crypto, loaded when first used. Loading it costs ≈ 6 ms (its ciphers pull in Node's streams), which
 * `dockctl status` and the other read-only commands never need: the modules they load reach it through this.
 */
export function nodeCrypto(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto');
}
