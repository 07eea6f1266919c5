import { FILE_STATES } from '../store/fileRow.ts';

// What dockctl prints for help and for a mistake; kept apart from the commands so that the dispatcher loads only the one it runs.

export const POOL_USAGE = `  assign SERIAL OFFICER                   an officer takes a docked pool recorder: dockd writes the officer id to it
                                          and its recordings from now on are theirs (needs dockd running)
  return SERIAL                           the recorder goes back to the pool: the assignment ends
  assignments [SERIAL] [--json]           who held which recorder when`;

export const POOL_COMMANDS = ['assign', 'return', 'assignments'];

export const USER_USAGE = `  user add NAME --role admin|officer [--officer-id ID] [--password-stdin]
                                          a station page user: officers log in with the officer id (警号) and a PIN,
                                          admins with NAME and a password (asked on the terminal, or read from stdin)
  user passwd NAME [--password-stdin]     a new password or PIN (ends the user's open sessions)
  user disable NAME | user enable NAME    stop (and log out) a user, or let them in again
  user list [--json]                      the users, their roles and open sessions (never a password)`;

export const USAGE = `usage: dockctl [--config FILE] <command>
  status [--json | --watch]               station, docked recorders, queue, disk, alarms (--watch: refresh every second)
  files [--json] [--state STATE]          the catalog (states: ${FILE_STATES.join(', ')}; damaged: every recording whose
                                          content does not demux cleanly, whatever its state); --json streams the array
        [--officer ID] [--case-no X]      only one officer's recordings, only one case's
        [--from T] [--to T]               captured at or after T, before T (ISO 8601; without an offset: UTC)
        [--after ID] [--limit N]          a page: the N recordings after catalog id ID
  reprobe ID | --all-damaged              verify a stored recording again (after damaged, or a probe that could not run)
  annotate ID --case-no X --purpose Y [--place P] [--collector C] [--captured-at ISO]
                                          complete a recording's required metadata (ID: catalog id or sha256 prefix)
  verify [--json] [--head FILE]           re-hash every stored object and check the audit chain (and that it still holds the
                                          signed audit head HQ kept in FILE); exit 1 naming each bad item
  audit [--json] [--since T]              the audit trail (hash chain)
  export ID --to DIR [--json]             copy a recording with its metadata and audit entries; the export is audited
  stats [--from DATE] [--to DATE] [--by officer|device|day] [--json | --csv]
                                          counts per officer, recorder or capture day over capture times (DATE: a day
                                          YYYY-MM-DD in station time, whole day included, or an ISO 8601 time)
${POOL_USAGE}
${USER_USAGE}`;

/** A mistake in how dockctl was called (exit 2, the message without the usage). */
export class UsageError extends Error {}
