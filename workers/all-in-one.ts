/** Both roles in one process: the embedded default on a single machine. */
import { runWorker } from './setup.js';

await runWorker('all');
