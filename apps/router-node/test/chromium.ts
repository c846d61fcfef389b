/**
 * A headless Chromium for tests, driven over the DevTools protocol on a pipe
 * (`--remote-debugging-pipe`: commands on fd 3, replies on fd 4, each message JSON ended by a
 * NUL byte). No port to discover, no WebSocket client needed on Node 20.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

const NAMES = ['chromium', 'chromium-browser', 'google-chrome'];

function which(name: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

function findOnPath(): string | null {
  for (const name of NAMES) {
    const path = which(name);
    if (path !== null) return path;
  }
  return null;
}

/**
 * The Chromium binary (`CHROMIUM` env var, else on the PATH); when there is none, tries
 * `apt-get install -y chromium` (as root, or with `sudo -n`). Answers `{ skip }` with the
 * reason when it cannot be had.
 */
export function findOrInstallChromium(): { path: string } | { skip: string } {
  const given = process.env.CHROMIUM;
  if (given !== undefined && given !== '') return { path: given };
  const found = findOnPath();
  if (found !== null) return { path: found };
  const asRoot = process.getuid?.() === 0;
  const sudo = !asRoot && which('sudo') !== null;
  if (!asRoot && !sudo) {
    return { skip: 'no chromium on the PATH, and not root nor sudo to apt-get install it' };
  }
  const prefix = asRoot ? [] : ['sudo', '-n'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const aptGet = (...args: string[]) => {
    const [cmd, ...rest] = [...prefix, 'apt-get', ...args];
    execFileSync(cmd!, rest, { stdio: 'pipe', env, timeout: 15 * 60_000 });
  };
  try {
    try {
      aptGet('install', '-y', '--no-install-recommends', 'chromium');
    } catch {
      aptGet('update'); // a fresh machine's package lists may be empty or stale
      aptGet('install', '-y', '--no-install-recommends', 'chromium');
    }
  } catch (err) {
    const detail = String((err as { stderr?: Buffer }).stderr ?? err)
      .trim()
      .split('\n')
      .pop();
    return { skip: `no chromium on the PATH and apt-get install chromium failed: ${detail}` };
  }
  const installed = findOnPath();
  return installed !== null
    ? { path: installed }
    : { skip: 'apt-get install chromium succeeded but no chromium binary is on the PATH' };
}

interface Pending {
  resolve(result: Record<string, unknown>): void;
  reject(err: Error): void;
}

/** One headless browser with one page of `width` × `height`. */
export class HeadlessChromium {
  readonly #child: ChildProcess;
  readonly #profile: string;
  readonly #out: Writable;
  readonly #pending = new Map<number, Pending>();
  readonly #exited: Promise<void>;
  #nextId = 1;
  #session = '';
  #stderr = '';

  private constructor(path: string, width: number, height: number) {
    this.#profile = mkdtempSync(join(tmpdir(), 'engram-chromium-'));
    this.#child = spawn(
      path,
      [
        '--headless',
        // Root (and most containers) cannot use Chromium's sandbox; the page is our own.
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-extensions',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--no-default-browser-check',
        '--mute-audio',
        '--hide-scrollbars',
        '--remote-debugging-pipe',
        `--user-data-dir=${this.#profile}`,
        `--window-size=${width},${height}`,
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
    );
    this.#exited = new Promise((resolve) => this.#child.once('exit', () => resolve()));
    void this.#exited.then(() => {
      for (const p of this.#pending.values())
        p.reject(new Error(`chromium exited: ${this.#tail()}`));
      this.#pending.clear();
    });
    this.#child.stderr!.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    });
    this.#out = this.#child.stdio[3] as Writable;
    this.#out.on('error', () => {}); // EPIPE after an exit: reported through #exited
    // Bytes until a NUL: a chunk may end inside a multi-byte character.
    let buffered = Buffer.alloc(0);
    (this.#child.stdio[4] as Readable).on('data', (d: Buffer) => {
      buffered = Buffer.concat([buffered, d]);
      for (let end = buffered.indexOf(0); end >= 0; end = buffered.indexOf(0)) {
        const msg = JSON.parse(buffered.subarray(0, end).toString()) as {
          id?: number;
          result?: Record<string, unknown>;
          error?: { message: string };
        };
        buffered = buffered.slice(end + 1);
        const p = msg.id === undefined ? undefined : this.#pending.get(msg.id);
        if (p === undefined) continue; // an event: not used
        this.#pending.delete(msg.id!);
        if (msg.error !== undefined) p.reject(new Error(`DevTools: ${msg.error.message}`));
        else p.resolve(msg.result ?? {});
      }
    });
  }

  /** Starts Chromium and opens one page (no URL yet). */
  static async launch(path: string, width = 1200, height = 800): Promise<HeadlessChromium> {
    const browser = new HeadlessChromium(path, width, height);
    try {
      const { targetId } = await browser.send('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = await browser.send('Target.attachToTarget', {
        targetId,
        flatten: true,
      });
      browser.#session = sessionId as string;
      await browser.send('Emulation.setDeviceMetricsOverride', {
        width,
        height,
        deviceScaleFactor: 1,
        mobile: false,
      });
    } catch (err) {
      await browser.close();
      throw err;
    }
    return browser;
  }

  #tail(): string {
    return this.#stderr.trim().split('\n').slice(-3).join(' | ');
  }

  /** One DevTools command; page commands go to the page's session. */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const browserWide = method.startsWith('Target.') || method.startsWith('Browser.');
    const sessionId = browserWide ? undefined : this.#session;
    return new Promise((resolve, reject) => {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
        reject(new Error(`chromium exited: ${this.#tail()}`));
        return;
      }
      this.#pending.set(id, { resolve, reject });
      this.#out.write(`${JSON.stringify({ id, method, params, sessionId })}\0`);
    });
  }

  async navigate(url: string): Promise<void> {
    await this.send('Page.navigate', { url });
  }

  /** Evaluates `expression` in the page (promises awaited) and returns its JSON value. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    const thrown = r.exceptionDetails as { exception?: { description?: string } } | undefined;
    if (thrown !== undefined) throw new Error(`page threw: ${thrown.exception?.description}`);
    return (r.result as { value: T }).value;
  }

  /** A PNG of the page's viewport. */
  async screenshot(): Promise<Buffer> {
    const { data } = await this.send('Page.captureScreenshot', { format: 'png' });
    return Buffer.from(data as string, 'base64');
  }

  /** Closes the browser (killed if it does not exit in 5 s) and removes its profile. */
  async close(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.send('Browser.close').catch(() => {});
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
    rmSync(this.#profile, { recursive: true, force: true });
  }
}
