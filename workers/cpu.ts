/** CPU worker: the workflows, curate and report. */
import { runWorkers } from './setup.js';

await runWorkers(['cpu']);
