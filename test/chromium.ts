// Debian's Chromium for the browser tests, driven by playwright-core (no browser download).
import { existsSync } from 'node:fs';

export const CHROMIUM = process.env.SELFTOK_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_FLAGS = ['--no-sandbox', '--headless=new', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/** Why a browser test is skipped here, or null when Chromium is there. */
export const noChromium = (): string | null => (existsSync(CHROMIUM) ? null : `no Chromium at ${CHROMIUM} (.ci/run installs Debian's chromium)`);

/** A Vite server's address and its close (vite's preview server, typed loosely). */
export type Server = { resolvedUrls: { local: string[] } | null; close: () => Promise<void> };
