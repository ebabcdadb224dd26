/** GPU worker: sample, judge, train, evaluate on SELF_REWARD_DEVICE (see workers/setup.ts). */
import { runWorkers } from './setup.js';

await runWorkers(['gpu']);
