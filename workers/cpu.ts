/** CPU worker: the workflows, curate and report. */
import { workerMain } from './setup.js';

await workerMain('cpu');
