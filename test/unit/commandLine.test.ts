import { describe, expect, it } from 'vitest';
import { parseCommandArgs } from '../../daemon/cli/commandLine.ts';

describe("dockctl's command line", () => {
  it('reads boolean flags alone as parseArgs does, and gives parseArgs everything else', () => {
    expect(parseCommandArgs([])).toEqual({ values: {}, positionals: [] });
    expect(parseCommandArgs(['--json', '--watch', '--json'])).toEqual({ values: { json: true, watch: true }, positionals: [] });
    expect(parseCommandArgs(['--all-damaged'])).toEqual({ values: { 'all-damaged': true }, positionals: [] });
    expect(parseCommandArgs(['--json', '12'])).toEqual({ values: { json: true }, positionals: ['12'] });
    expect(parseCommandArgs(['--state', 'ready', '--json'])).toEqual({
      values: { state: 'ready', json: true },
      positionals: [],
    });
    expect(() => parseCommandArgs(['--json=yes'])).toThrow(
      expect.objectContaining({ code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' }),
    );
    expect(() => parseCommandArgs(['--bogus'])).toThrow(expect.objectContaining({ code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' }));
    expect(() => parseCommandArgs(['--state'])).toThrow(expect.objectContaining({ code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' }));
  });
});
