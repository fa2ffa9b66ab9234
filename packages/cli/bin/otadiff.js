#!/usr/bin/env node
import { main } from '../dist/main.js';

// A reader that closes the pipe (`otadiff … | head -1`) wants no more output: end at once, quietly, with
// status 0, whatever the command was doing (a server included), instead of dying on an EPIPE stack trace.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });

process.exitCode = await main(process.argv);
