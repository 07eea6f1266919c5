import { CodedError } from '../errors.ts';

/**
 * Errors of the recorder emulator, by code:
 * - EMULATOR_SOCAT_MISSING: socat is not installed (needed for the pty);
 * - EMULATOR_PTY_FAILED: socat could not make the pty pair (or a non-link file is in the way);
 * - EMULATOR_MOUNT_BUSY: something already sits at `<mountRoot>/<serial>`;
 * - EMULATOR_BAD_CONFIG: an option is invalid (a serial that is not 7 characters, …);
 * - EMULATOR_STATE: an operation that does not fit the recorder's state (plugging in a recorder already plugged in).
 */
export type EmulatorErrorCode =
  | 'EMULATOR_SOCAT_MISSING'
  | 'EMULATOR_PTY_FAILED'
  | 'EMULATOR_MOUNT_BUSY'
  | 'EMULATOR_BAD_CONFIG'
  | 'EMULATOR_STATE';

export class EmulatorError extends CodedError<EmulatorErrorCode> {
  constructor(code: EmulatorErrorCode, message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = 'EmulatorError';
  }
}
