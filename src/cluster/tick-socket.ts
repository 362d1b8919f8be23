/**
 * The heartbeat socket of `receive: on-tick` (native/floatip_udp.c): bound, non-blocking and
 * watched by nobody, so a datagram that arrives wakes no thread; `drain` reads what queued.
 * Every call is synchronous and none can wait.
 */
import { addonLoadMessage, loadNativeAddon } from "../adapters/linux/native-addon.ts";

interface UdpAddon {
  udpOpen(address: string, port: number, recvBufferBytes: number): { fd: number; port: number };
  udpSend(
    fd: number,
    datagram: Buffer,
    address: string,
    port: number,
    notAfterMs?: number,
  ): string | undefined;
  udpMonotonicMs(): number;
  udpDrain(fd: number, max: number): [Buffer, string, number][];
  udpRecvBufferBytes(fd: number): number;
  udpClose(fd: number): void;
}

export class TickSocketError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = "TickSocketError";
    this.code = code;
  }
}

export interface TickSocket {
  /** The bound port (the one asked for, or the kernel's choice for 0). */
  readonly port: number;
  /**
   * undefined when the kernel took the datagram; otherwise its errno code ("EAGAIN", …), or
   * "LATE" when the clock had passed `notAfterMs` (see `FdSender`) and nothing was sent.
   */
  send(datagram: Buffer, address: string, port: number, notAfterMs?: number): string | undefined;
  /** Up to `max` queued datagrams, oldest first: [bytes, source address, source port]. */
  drain(max: number): [Buffer, string, number][];
  /** CLOCK_MONOTONIC in milliseconds: the clock `send`'s `notAfterMs` is read on. */
  monotonicMs(): number;
  receiveBufferBytes(): number | undefined;
  close(): void;
}

const required = [
  "udpOpen",
  "udpSend",
  "udpMonotonicMs",
  "udpDrain",
  "udpRecvBufferBytes",
  "udpClose",
];

/**
 * `sendto` on a socket's descriptor with a last-moment clock check: a datagram the control
 * loop allowed goes only if `notAfterMs` (CLOCK_MONOTONIC, as `monotonicMs`) has not passed
 * when the kernel call is made ("LATE" otherwise, nothing sent). A process stopped between
 * the loop's decision and the system call (SIGSTOP, a frozen VM) then sends nothing on waking;
 * the check in JavaScript before it left the encoding and Node's send path unguarded.
 */
export interface FdSender {
  send(datagram: Buffer, address: string, port: number, notAfterMs?: number): string | undefined;
  monotonicMs(): number;
}

/** An FdSender for `fd` (a socket Node's dgram owns and reads); undefined without the addon. */
export function fdSender(fd: number): FdSender | undefined {
  let addon: UdpAddon;
  try {
    addon = loadNativeAddon<UdpAddon>(required);
  } catch {
    return undefined;
  }
  return {
    send: (datagram, address, port, notAfterMs) =>
      addon.udpSend(fd, datagram, address, port, notAfterMs),
    monotonicMs: () => addon.udpMonotonicMs(),
  };
}

/**
 * Binds `address:port` (a literal) and asks for a receive buffer of `recvBufferBytes` (capped
 * by net.core.rmem_max). Throws TickSocketError: UDP_ADDON_MISSING when the addon cannot be
 * loaded, or the errno code of the failed call (EADDRINUSE, EADDRNOTAVAIL, …).
 */
export function openTickSocket(address: string, port: number, recvBufferBytes: number): TickSocket {
  let addon: UdpAddon;
  try {
    addon = loadNativeAddon<UdpAddon>(required);
  } catch (error) {
    throw new TickSocketError(addonLoadMessage("UDP", error), "UDP_ADDON_MISSING");
  }
  let opened: { fd: number; port: number };
  try {
    opened = addon.udpOpen(address, port, recvBufferBytes);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new TickSocketError(
      `cannot bind ${address}:${port} for heartbeats: ${error instanceof Error ? error.message : String(error)}`,
      typeof code === "string" ? code : "EUNKNOWN",
    );
  }
  let fd: number | undefined = opened.fd;
  const open = (): number => {
    if (fd === undefined) throw new TickSocketError("the heartbeat socket is closed", "ECLOSED");
    return fd;
  };
  return {
    port: opened.port,
    send: (datagram, to, toPort, notAfterMs) =>
      fd === undefined ? "ECLOSED" : addon.udpSend(fd, datagram, to, toPort, notAfterMs),
    monotonicMs: () => addon.udpMonotonicMs(),
    drain: (max) => addon.udpDrain(open(), max),
    receiveBufferBytes: () => (fd === undefined ? undefined : addon.udpRecvBufferBytes(fd)),
    close: () => {
      if (fd !== undefined) addon.udpClose(fd);
      fd = undefined;
    },
  };
}
