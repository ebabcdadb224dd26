/** Entry point of `selfreward` (`npx tsx cli/selfreward.ts --help`). */
import { main } from './commands.js';

process.exitCode = await main(process.argv.slice(2));
