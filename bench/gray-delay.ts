/**
 * A TCP proxy in front of a memory node that holds every byte the node sends back for a
 * settable time: the gray-failure bench's slow node while the memory node has no latency fault
 * of its own. Bytes keep their order when the delay changes (each is released no earlier than
 * the one before it). Requests go through untouched; the node's answers, health replies
 * included, arrive `delayMs` late, as from a node that takes that long to answer.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class DelayProxy {
  delayMs: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server, delayMs: number) {
    this.#server = server;
    this.delayMs = delayMs;
  }

  /** Listens on 127.0.0.1, an ephemeral port, forwarding to `target` (host:port). */
  static async start(target: { host: string; port: number }, delayMs: number): Promise<DelayProxy> {
    let proxy: DelayProxy | null = null;
    const server = createServer((client) => proxy!.#pipe(client, target));
    proxy = new DelayProxy(server, delayMs);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as { port: number }).port;
  }

  #pipe(client: Socket, target: { host: string; port: number }): void {
    const upstream = connect(target.port, target.host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.#sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    // Node → client, delayed: one queue and one timer per connection keep the order.
    const queue: { due: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | null = null;
    let lastDue = 0;
    const drain = () => {
      timer = null;
      const now = performance.now();
      while (queue.length > 0 && queue[0]!.due <= now) client.write(queue.shift()!.chunk);
      if (queue.length > 0) timer = setTimeout(drain, queue[0]!.due - now);
    };
    upstream.on('data', (chunk: Buffer) => {
      lastDue = Math.max(lastDue, performance.now() + this.delayMs);
      queue.push({ due: lastDue, chunk });
      if (timer === null) timer = setTimeout(drain, Math.max(0, queue[0]!.due - performance.now()));
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
