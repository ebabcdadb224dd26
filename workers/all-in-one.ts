/** Both workers in one process: the embedded default on a single machine. */
import { runWorkers } from './setup.js';

await runWorkers(['cpu', 'gpu']);
