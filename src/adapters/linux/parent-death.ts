/**
 * Ties a child process's life to its parent's: `dieWithParent()` asks the kernel for
 * SIGKILL the moment the parent dies, whatever killed it (PR_SET_PDEATHSIG), through the
 * native addon. The agent's services process calls it first thing, so that no capability
 * goes on acting (finishing a storage request, serving a relay) for a control plane that is
 * gone — not even for the one event-loop turn it would take to notice the closed channel.
 */
import { addonLoadMessage, loadNativeAddon } from "./native-addon.ts";

interface ParentDeathAddon {
  dieWithParent(): boolean;
}

/** True when armed; false when the parent had already died (the caller should exit). */
export function dieWithParent(): boolean {
  let addon: ParentDeathAddon;
  try {
    addon = loadNativeAddon<ParentDeathAddon>(["dieWithParent"]);
  } catch (cause) {
    throw new Error(addonLoadMessage("parent-death", cause), { cause });
  }
  return addon.dieWithParent();
}
