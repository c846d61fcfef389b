/**
 * The floor of an HTTP/2-aware proxy on @engram/h2, for the proxy bench: router-node's wire
 * without its routing. Each request stream is read whole, sent on one upstream connection (the
 * client's headers, `:authority` set to the node), its reply read whole and passed back
 * (headers, body, trailers) as they came. No table lookup, no breaker, retry or deadline, no
 * metrics, no RoutingInfo. Between node-relay.mjs (bytes only) and router-node it splits what a
 * call costs: HTTP/2 both sides here, routing in router-node above it.
 *
 * Run: node h2-passthrough.mjs <upstream host:port>; prints {"address":"127.0.0.1:<port>"}.
 */
import { Buffer } from 'node:buffer';
import { H2_ERROR, H2ClientConnection, H2Server } from '@engram/h2';

const [host, port] = (process.argv[2] ?? '').split(':');
if (host === undefined || port === undefined) {
  console.error('usage: node h2-passthrough.mjs <upstream host:port>');
  process.exit(2);
}
const authority = `${host}:${port}`;
const UNAVAILABLE = ['grpc-status', '14', 'grpc-message', 'upstream failed'];

let upstream = null;
/** The upstream connection, reopened when the last one can take no more streams. */
function connection() {
  if (upstream === null || !upstream.available) {
    upstream = H2ClientConnection.connect({ host, port: Number(port) });
  }
  return upstream;
}

/**
 * Gathers a stream's body, each chunk copied out of its read (router-node keeps the views
 * instead: this floor pays one copy per DATA frame more than router-node does).
 */
function collect(chunks, chunk) {
  if (chunk.length > 0) chunks.push(Buffer.from(chunk));
}

/** The node's side of one call: its reply, passed to the client once complete. */
class Reply {
  constructor(client) {
    this.client = client;
    this.headers = null;
    this.trailers = null;
    this.chunks = [];
  }
  onHeaders(_s, headers, end) {
    if (this.headers === null) {
      this.headers = headers;
      if (end) this.trailers = headers;
    } else this.trailers = headers;
  }
  onData(_s, chunk) {
    collect(this.chunks, chunk);
  }
  onClose() {
    const client = this.client;
    if (client.closed) return;
    if (this.headers === null || this.trailers === null) {
      client.sendHeaders(
        [':status', '200', 'content-type', 'application/grpc', ...UNAVAILABLE],
        true,
      );
      return;
    }
    if (this.trailers === this.headers) {
      client.sendHeaders(this.headers, true); // trailers-only
      return;
    }
    client.sendHeaders(this.headers, false);
    const c = this.chunks;
    if (c.length > 0) client.sendData(c.length === 1 ? c[0] : Buffer.concat(c), false);
    client.sendTrailers(this.trailers);
  }
}

/** The client's side of one call: its request, sent upstream once complete. */
class Request {
  constructor(stream) {
    this.stream = stream;
    this.chunks = [];
    this.up = null;
  }
  onHeaders() {}
  onData(_s, chunk, end) {
    collect(this.chunks, chunk);
    if (end) this.send();
  }
  onClose() {
    if (this.up !== null && !this.up.closed) this.up.reset(H2_ERROR.CANCEL);
  }
  send() {
    const headers = this.stream.headers.slice();
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i] === ':authority') headers[i + 1] = authority;
    }
    const c = this.chunks;
    const body = c.length === 1 ? c[0] : Buffer.concat(c);
    try {
      this.up = connection().request(headers, body, new Reply(this.stream));
    } catch {
      this.stream.sendHeaders(
        [':status', '200', 'content-type', 'application/grpc', ...UNAVAILABLE],
        true,
      );
    }
  }
}

const server = new H2Server({
  onStream: (stream) => {
    const request = new Request(stream);
    stream.handler = request;
    if (stream.remoteEnded) request.send();
  },
});
server.server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ address: `127.0.0.1:${server.server.address().port}` }));
});
