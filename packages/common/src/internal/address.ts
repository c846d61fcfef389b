import { InvalidArgumentError } from './errors.js';

// RFC 1123 labels (underscores allowed: Kubernetes and SRV-style names use them), at most 253
// characters in all, an optional trailing dot.
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;
// Loose on purpose: the resolver has the last word; this only keeps out what cannot be one.
const IPV6 = /^[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?$/;
const NOT_A_STRING = 'must be a "host:port" string';

type Parsed = { host: string; port: number };

/** The parsed address, or why it is not one (a phrase that reads after the field's name). */
function parse(address: unknown): Parsed | string {
  if (typeof address !== 'string') return NOT_A_STRING;
  const colon = address.lastIndexOf(':');
  if (colon <= 0) return 'must be "host:port"';
  let host = address.slice(0, colon);
  const portText = address.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(portText)) return 'port must be a number from 1 to 65535';
  const port = Number(portText);
  if (port < 1 || port > 65_535) return 'port must be a number from 1 to 65535';
  if (host.startsWith('[')) {
    if (!host.endsWith(']')) return 'an IPv6 host must be in brackets';
    host = host.slice(1, -1);
    if (!host.includes(':') || !IPV6.test(host)) return 'malformed IPv6 host';
    return { host, port };
  }
  if (host.includes(':')) return 'an IPv6 host must be in brackets, as [::1]:port';
  return HOSTNAME.test(host) ? { host, port } : 'malformed host';
}

/**
 * Why `address` is not a valid `host:port` (IPv6 hosts in brackets, port 1..65535), or
 * undefined when it is. The reason reads after the field's name (`"must be …"`, `"malformed
 * host"`).
 */
export function addressProblem(address: unknown): string | undefined {
  const parsed = parse(address);
  return typeof parsed === 'string' ? parsed : undefined;
}

/**
 * Splits `host:port` (`[::1]:7000` for IPv6; the brackets are not part of `host`). Throws
 * `InvalidArgumentError` naming `field` when the address is not valid (see `addressProblem`).
 */
export function parseAddress(address: unknown, field = 'address'): { host: string; port: number } {
  const parsed = parse(address);
  if (typeof parsed !== 'string') return parsed;
  throw new InvalidArgumentError(
    field,
    address,
    parsed === NOT_A_STRING ? 'a "host:port" string' : `a "host:port" string (${parsed})`,
  );
}

/** `host:port`, with an IPv6 host in brackets: the inverse of `parseAddress`. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
