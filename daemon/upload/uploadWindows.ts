/** `HH:MM-HH:MM` in the station's time zone; `end` before `start` wraps midnight, `start` = `end` is the whole day. */
export interface UploadWindow {
  startMin: number;
  endMin: number;
  text: string;
}

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

/** Windows as the config gives them (validated by the schema: `HH:MM-HH:MM`). */
export function parseWindows(windows: string[]): UploadWindow[] {
  return windows.map((w) => {
    const [start, end] = w.split('-');
    return { startMin: minutes(start), endMin: minutes(end), text: `${start}–${end}` };
  });
}

/** Minutes since local midnight of `at` in `timeZone`. */
export function localMinutes(at: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0);
  return get('hour') * 60 + get('minute');
}

function contains(w: UploadWindow, min: number): boolean {
  if (w.startMin === w.endMin) return true;
  if (w.startMin < w.endMin) return min >= w.startMin && min < w.endMin;
  return min >= w.startMin || min < w.endMin;
}

/** Whether ordinary recordings may upload at `at`: no windows configured, or `at` falls in one of them. */
export function inUploadWindow(windows: UploadWindow[], at: Date, timeZone: string): boolean {
  if (windows.length === 0) return true;
  const min = localMinutes(at, timeZone);
  return windows.some((w) => contains(w, min));
}

/** What the queue shows while ordinary recordings wait (English and zh-CN, like the alarm messages). */
export function waitingForWindow(windows: UploadWindow[]): string {
  const list = windows.map((w) => w.text).join(', ');
  return `waiting for upload window ${list} 等待上传时段 ${list}`;
}
