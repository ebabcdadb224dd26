#!/usr/bin/env node
/** Entry point of `selfreward`: `selfreward --help` once installed, `npm run selfreward -- --help` in a checkout. */
import { main } from './commands.js';

process.exitCode = await main(process.argv.slice(2));
