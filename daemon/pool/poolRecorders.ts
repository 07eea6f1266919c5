import { isBcError, officerIdentityProblem } from '../../drivers/protocols/bc/index.ts';
import type { RecorderLinks } from '../dock/recorderLinks.ts';
import type { Logger } from '../log.ts';
import type { StationContext } from '../service.ts';
import type { Assignment, Assignments } from '../store/assignments.ts';
import type { UserStore } from '../store/users.ts';

/** What an assignment or a return came to: said in words to whoever asked (dockctl, the page). */
export type PoolOutcome =
  | { ok: true; message: string; assignment: Assignment }
  | { ok: false; code: PoolErrorCode; message: string };

export type PoolErrorCode =
  | 'UNKNOWN_RECORDER'
  | 'UNKNOWN_OFFICER'
  | 'NOT_CONNECTED'
  | 'HELD'
  | 'NOT_ASSIGNED'
  | 'RECORDER_FAILED';

/**
 * Pool recorders: an officer takes a docked recorder at the station. dockd writes the officer's id to the recorder on
 * its control channel (`BC+UID=`, read back with `BC+UID?`), then records the assignment with its start; returning the
 * recorder ends it (and, when the recorder is still connected, gives it back its registry identity). Each is audited
 * with who asked. Recordings are attributed by capture time (Assignments.holderAt, at ingest).
 */
export class PoolRecorders {
  readonly assignments: Assignments;
  private readonly users: UserStore;
  private readonly log: Logger;
  /** One change at a time: two requests for one recorder must not interleave on its channel. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: StationContext,
    private readonly links: RecorderLinks,
  ) {
    this.assignments = ctx.catalog.assignments;
    this.users = ctx.catalog.users;
    this.log = ctx.log.child({ component: 'pool' });
  }

  assign(serial: string, officerId: string, by: string): Promise<PoolOutcome> {
    return this.serialize(() => this.doAssign(serial, officerId, by));
  }

  giveBack(serial: string, by: string): Promise<PoolOutcome> {
    return this.serialize(() => this.doReturn(serial, by));
  }

  /** The officer's name for the recorder and the catalog; undefined when the station knows no such officer. */
  officerName(officerId: string): string | undefined {
    const device = this.ctx.config.devices.find((d) => d.officerId === officerId);
    const login = this.users.forLogin(officerId);
    const user = login && login.user.role === 'officer' && !login.user.disabled ? login.user : undefined;
    if (!device && !user) return undefined;
    return device?.officerName ?? user?.name ?? '';
  }

  private serialize(fn: () => Promise<PoolOutcome>): Promise<PoolOutcome> {
    const result = this.queue.then(fn, fn);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private refuse(code: PoolErrorCode, serial: string, message: string, by: string, op: 'assign' | 'return'): PoolOutcome {
    this.ctx.catalog.audit(`recorder.${op}-refused`, serial, { code, message, by });
    this.log.warn({ serial, code, by }, message);
    return { ok: false, code, message };
  }

  private async doAssign(serial: string, officerId: string, by: string): Promise<PoolOutcome> {
    const { config, catalog, clock } = this.ctx;
    if (!config.devices.some((d) => d.serial === serial))
      return this.refuse('UNKNOWN_RECORDER', serial, `unknown recorder ${serial}: it is not in devices`, by, 'assign');
    const name = this.officerName(officerId);
    if (name === undefined)
      return this.refuse(
        'UNKNOWN_OFFICER',
        serial,
        `unknown officer ${officerId}: add them with dockctl user add NAME --role officer --officer-id ${officerId}`,
        by,
        'assign',
      );
    const held = this.assignments.held(serial);
    if (held && held.officerId !== officerId)
      return this.refuse(
        'HELD',
        serial,
        `recorder ${serial} is held by officer ${held.officerId} since ${held.startedAt}: return it first (dockctl return ${serial})`,
        by,
        'assign',
      );
    if (held) return { ok: true, message: `recorder ${serial} is already assigned to officer ${officerId}`, assignment: held };
    const problem = officerIdentityProblem({ officerId, officerName: name, unitNo: '' });
    if (problem)
      return this.refuse('UNKNOWN_OFFICER', serial, `cannot write officer ${officerId} to a recorder: ${problem}`, by, 'assign');
    const written = await this.writeOfficer(serial, officerId, name);
    if (!written.ok) return this.refuse(written.code, serial, written.message, by, 'assign');
    const assignment = catalog.recorderAssigned({ serial, officerId, officerName: name || null, at: clock.now(), by });
    this.showOnTile(serial, officerId, name || null);
    this.log.info({ serial, officerId, by }, 'pool recorder assigned');
    return { ok: true, message: `recorder ${serial} assigned to officer ${officerId}${name ? ` (${name})` : ''}`, assignment };
  }

  private async doReturn(serial: string, by: string): Promise<PoolOutcome> {
    const { config, catalog, clock } = this.ctx;
    const held = this.assignments.held(serial);
    if (!held) return this.refuse('NOT_ASSIGNED', serial, `recorder ${serial} is not assigned to anyone`, by, 'return');
    const ended = catalog.recorderReturned(serial, clock.now(), by);
    // The recorder goes back to its registry identity, so that what it records next is not named for the former holder.
    const device = config.devices.find((d) => d.serial === serial);
    let note = '';
    if (device && this.links.controlChannelFor(serial)) {
      const written = await this.writeOfficer(serial, device.officerId, device.officerName ?? '');
      note = written.ok
        ? `; the recorder names its files with ${device.officerId} again`
        : `; the recorder still carries officer ${held.officerId} (${written.message})`;
    } else if (device) {
      note = `; the recorder is not connected and still carries officer ${held.officerId} until it is assigned again`;
    }
    this.showOnTile(serial, device?.officerId ?? null, device?.officerName ?? null);
    this.log.info({ serial, officerId: held.officerId, by }, 'pool recorder returned');
    return { ok: true, message: `recorder ${serial} returned by officer ${held.officerId}${note}`, assignment: ended };
  }

  private async writeOfficer(
    serial: string,
    officerId: string,
    officerName: string,
  ): Promise<{ ok: true } | { ok: false; code: PoolErrorCode; message: string }> {
    const channel = this.links.controlChannelFor(serial);
    if (!channel)
      return {
        ok: false,
        code: 'NOT_CONNECTED',
        message: `recorder ${serial} is not connected: dock it (a recorder that keeps its control channel while docked) and try again`,
      };
    let opened: Awaited<ReturnType<typeof channel.open>> | undefined;
    try {
      opened = await channel.open();
      const before = await opened.client.officer();
      await opened.client.setOfficer({ officerId, officerName, unitNo: before.unitNo });
      const after = await opened.client.officer();
      if (after.officerId !== officerId)
        return { ok: false, code: 'RECORDER_FAILED', message: `recorder ${serial} still says officer ${after.officerId}` };
      return { ok: true };
    } catch (e) {
      const code = isBcError(e) ? e.code : 'error';
      return {
        ok: false,
        code: isBcError(e, 'BC_CLOSED') ? 'NOT_CONNECTED' : 'RECORDER_FAILED',
        message: `recorder ${serial} did not take the officer id (${code}: ${(e as Error).message})`,
      };
    } finally {
      await opened?.close();
    }
  }

  private showOnTile(serial: string, officerId: string | null, officerName: string | null): void {
    for (const [key, r] of this.ctx.board.recorders)
      if (r.serial === serial) this.ctx.board.patchRecorder(key, { officerId, officerName });
  }
}
