#!/usr/bin/env node
/**
 * engram-router: the admin CLI of router-node, over its RouterAdmin API.
 *   engram-router [flags] COMMAND [ARGS]      (engram-router --help lists them)
 * Exit codes: 0 ok, 1 the router refused or failed the request, 2 usage, 3 router unreachable.
 */
import { readFileSync } from 'node:fs';
import { grpcAdminCaller } from './internal/admin-cli/client.js';
import { runCli } from './internal/admin-cli/run.js';

// grpc-js passes an IP host (`--admin 127.0.0.1:…`) as the TLS server name, which Node warns
// about (DEP0123) on stderr; the certificate is still checked against that IP. Keep stderr to
// the one line a failure prints.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const code = typeof rest[0] === 'object' ? (rest[0] as { code?: string }).code : rest[1];
  if (code !== 'DEP0123') (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

const code = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  readFile: (path) => readFileSync(path),
  connect: grpcAdminCaller,
});
// Not process.exit: a piped stdout drains first.
process.exitCode = code;
