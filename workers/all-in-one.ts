/** Both roles in one process: the embedded default on a single machine. */
import { workerMain } from './setup.js';

await workerMain('all');
