/**
 * The floor of a proxy written in Node.js, for the proxy bench: a TCP relay, one upstream
 * connection per client connection, bytes passed on as they arrive both ways ('data' events
 * and socket writes, as @engram/h2 reads and writes its sockets), nothing parsed. What it costs
 * per call is what any Node.js proxy pays to move a call's bytes through libuv and V8;
 * router-node's cost above it is its own work (HTTP/2 both sides, routing, metrics).
 *
 * Run: node node-relay.mjs <upstream host:port>; prints {"address":"127.0.0.1:<port>"}.
 */
import net from 'node:net';

const [host, port] = (process.argv[2] ?? '').split(':');
if (host === undefined || port === undefined) {
  console.error('usage: node node-relay.mjs <upstream host:port>');
  process.exit(2);
}

/** Passes `from`'s bytes to `to`, pausing `from` while `to` has a backlog. */
function relay(from, to) {
  from.on('data', (chunk) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
}

const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ host, port: Number(port), noDelay: true });
  relay(client, upstream);
  relay(upstream, client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  for (const s of [client, upstream]) {
    s.on('error', close);
    s.on('close', close);
  }
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ address: `127.0.0.1:${server.address().port}` }));
});
