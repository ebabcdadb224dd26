/** GPU worker: sample, judge, train, evaluate on SELF_REWARD_DEVICE (see workers/setup.ts). */
import { runWorker } from './setup.js';

await runWorker('gpu');
