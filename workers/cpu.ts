/** CPU worker: the workflows, curate and report. */
import { runWorker } from './setup.js';

await runWorker('cpu');
