#!/usr/bin/env node
/**
 * engram-router: the admin CLI of router-node, over its RouterAdmin API.
 *   engram-router [flags] COMMAND [ARGS]      (engram-router --help lists them)
 * Exit codes: 0 ok, 1 the router refused or failed the request, 2 usage, 3 router unreachable.
 */
import { readFileSync } from 'node:fs';
import { grpcAdminCaller } from './internal/admin-cli/client.js';
import { runCli } from './internal/admin-cli/run.js';

const code = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  readFile: (path) => readFileSync(path),
  connect: grpcAdminCaller,
});
// Not process.exit: a piped stdout drains first.
process.exitCode = code;
