import { hash as oneShot } from "node:crypto";
import { EFI_ACTION, EV } from "./constants.js";
import type { EventLog } from "./types.js";

/**
 * Known firmware faults that make an honest log fail to replay. Each is tried only after the plain
 * replay of a PCR failed, and a PCR it explains is reported with the workaround's name.
 */
export interface ReplayWorkaround {
  name: string;
  description: string;
  /** Sequences of digests the firmware extended without logging them, to try after the logged events. */
  unloggedExtends(log: EventLog, pcr: number, hash: string): Buffer[][];
}

const hasAction = (log: EventLog, pcr: number, text: string) =>
  log.events.some((e) => e.pcr === pcr && e.type === EV.EFI_ACTION && e.decoded.kind === "text" && e.decoded.text === text);

export const WORKAROUNDS: readonly ReplayWorkaround[] = [
  {
    name: "missing-exit-boot-services-events",
    description:
      "the firmware extended PCR 5 with the ExitBootServices EV_EFI_ACTION events (\"Exit Boot Services Invocation\", \"… Returned with Success\") but did not log them",
    unloggedExtends(log, pcr, hash) {
      if (pcr !== 5 || hasAction(log, 5, EFI_ACTION.EXIT_BOOT_SERVICES_INVOCATION)) return [];
      const h = (s: string) => oneShot(hash, s, "buffer");
      const invocation = h(EFI_ACTION.EXIT_BOOT_SERVICES_INVOCATION);
      return [[invocation], [invocation, h(EFI_ACTION.EXIT_BOOT_SERVICES_SUCCEEDED)]];
    },
  },
];
