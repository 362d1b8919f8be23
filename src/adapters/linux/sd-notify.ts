/**
 * systemd's service notification protocol (sd_notify(3)) for `Type=notify` units: READY=1
 * once the agent has joined a quorum (or decided it cannot yet), STATUS= lines an operator
 * sees in `systemctl status`, WATCHDOG=1 from the control plane's own loop (so systemd
 * restarts an agent whose control plane stalls beyond `WatchdogSec=`), STOPPING=1 on
 * SIGTERM.
 *
 * Without $NOTIFY_SOCKET (not under systemd, or `Type=simple`) every call does nothing. The
 * agent runs as a child of floatip's supervisor, so the unit needs `NotifyAccess=all`; for
 * the same reason WATCHDOG_PID (the supervisor's) is not compared with our own PID.
 */
import { addonLoadMessage, loadNativeAddon } from "./native-addon.ts";

interface NotifyAddon {
  sdNotify(socketPath: string, text: string): number;
}

export class SystemdNotifier {
  readonly #socket: string | undefined;
  readonly #onError: (message: string) => void;
  /** Half of $WATCHDOG_USEC in ms (how often to ping), or undefined without a watchdog. */
  readonly watchdogEveryMs: number | undefined;
  #failed = false;

  constructor(
    env: NodeJS.ProcessEnv = process.env,
    onError: (message: string) => void = () => undefined,
  ) {
    const socket = env.NOTIFY_SOCKET;
    this.#socket = socket !== undefined && socket !== "" ? socket : undefined;
    this.#onError = onError;
    const usec = Number(env.WATCHDOG_USEC);
    this.watchdogEveryMs =
      this.#socket !== undefined && Number.isFinite(usec) && usec > 0
        ? Math.max(1, Math.floor(usec / 2000))
        : undefined;
  }

  /** Whether systemd listens (NOTIFY_SOCKET is set). */
  get enabled(): boolean {
    return this.#socket !== undefined;
  }

  ready(status: string): void {
    this.#send(`READY=1\nSTATUS=${status}`);
  }

  status(status: string): void {
    this.#send(`STATUS=${status}`);
  }

  watchdog(): void {
    this.#send("WATCHDOG=1");
  }

  stopping(status: string): void {
    this.#send(`STOPPING=1\nSTATUS=${status}`);
  }

  #send(text: string): void {
    const socket = this.#socket;
    if (socket === undefined) return;
    try {
      loadNativeAddon<NotifyAddon>(["sdNotify"]).sdNotify(socket, text);
      this.#failed = false;
    } catch (error) {
      // Said once per run of failures, not per ping.
      if (this.#failed) return;
      this.#failed = true;
      const code = (error as { code?: string }).code;
      this.#onError(
        code === undefined
          ? addonLoadMessage("systemd notification", error)
          : `cannot notify systemd at ${socket} (${code})`,
      );
    }
  }
}
