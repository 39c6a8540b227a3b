/** Test harness: how long the event loop of this process is held by work on it, load aside. */
import { readFileSync } from 'node:fs';

/** CPU time of this process's main thread (ms, 10 ms steps), or null where /proc does not say. */
function mainThreadCpuMs(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is [0], utime [11], stime [12].
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

/**
 * Watches the event loop with a 10 ms timer. A late tick on a loaded machine may only mean the
 * process waited for a core; the main thread's CPU time between two ticks is the work that held
 * the loop, so `worstHeldMs` is that (wall time where /proc is missing).
 */
export function watchEventLoop(): { stop(): { worstHeldMs: number; worstLateMs: number; ticks: number } } {
  let lastWall = performance.now();
  let lastCpu = mainThreadCpuMs();
  let worstHeldMs = 0;
  let worstLateMs = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const wall = performance.now();
    const cpu = mainThreadCpuMs();
    const late = wall - lastWall;
    const held = cpu !== null && lastCpu !== null ? Math.min(late, cpu - lastCpu) : late;
    worstLateMs = Math.max(worstLateMs, late);
    worstHeldMs = Math.max(worstHeldMs, held);
    lastWall = wall;
    lastCpu = cpu;
    ticks++;
  }, 10);
  return {
    stop() {
      clearInterval(timer);
      return { worstHeldMs, worstLateMs, ticks };
    },
  };
}
