/** The station's time. Services read it here, never from the wall clock, so a test can hand in one it moves. */
export interface Clock {
  now(): Date;
  /** Milliseconds since the epoch (`now().getTime()`). */
  ms(): number;
}

export const systemClock: Clock = {
  now: () => new Date(),
  ms: () => Date.now(),
};
