/** Debian's chromium for the tests and scripts that drive a real browser (through playwright-core). */
import { existsSync } from 'node:fs';

import { chromium, type Browser } from 'playwright-core';

/** scripts/setup-browser.sh installs it; playwright's own browser builds are not downloaded. */
export const CHROMIUM = '/usr/bin/chromium';
/**
 * The build machines are closed networks: without these, chromium's own background traffic
 * (updates, sync, field trials) is refused and slows or stalls page loads.
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run scripts/setup-browser.sh first`);
}

/** A headless chromium with a fresh profile. */
export async function launchChromium(): Promise<Browser> {
  requireChromium();
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}
