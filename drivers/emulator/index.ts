/** The recorder emulator: a BC-protocol recorder on a pty (or a given tty) whose storage appears in a mount root. */
export {
  EmulatedRecorder,
  type EmulatedRecorderOptions,
  type EmulatorEvents,
  type EmulatorPort,
  type RecorderState,
} from './emulatedRecorder.ts';
export {
  CommandServer,
  answer,
  recorderClock,
  type CommandServerHooks,
  type EmulatorFaults,
  type RecorderModel,
} from './commandServer.ts';
export { createPtyPair, type PtyPair, type PtyPairOptions } from './ptyPair.ts';
export { exposeVolume, withdrawVolume } from './volumeExposure.ts';
export { deleteFromStorage } from './recorderStorage.ts';
export { RECORDING_DIR, recordInto, type RecordOptions } from './recording.ts';
export { EmulatorError, type EmulatorErrorCode } from './errors.ts';
