// The server's mail outbox (OUTBOX_DIR, one .eml file per mail): links the frontend's
// pages would receive (verification, invitation) are read from there.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run this through scripts/clients/with_server.py`);
  }
  return value;
}

/** The first capture of `pattern` in a mail to `address`, waiting for the mail job. */
export async function mailedToken(address: string, pattern: RegExp): Promise<string> {
  const outbox = required("OUTBOX_DIR");
  const recipient = new RegExp(`^To:.*${address.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "im");
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    let files: string[] = [];
    try {
      files = readdirSync(outbox).filter((name) => name.endsWith(".eml"));
    } catch {
      // The outbox folder appears with the first mail.
    }
    for (const name of files) {
      const text = readFileSync(join(outbox, name), "utf8");
      const found = recipient.test(text) ? pattern.exec(text) : null;
      if (found?.[1]) {
        return found[1];
      }
    }
    await sleep(100);
  }
  throw new Error(`no mail to ${address} matching ${pattern} in ${outbox} within 30 s`);
}
