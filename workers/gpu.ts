/** GPU worker: sample, judge, train, evaluate on SELF_REWARD_DEVICE (see workers/setup.ts). */
import { workerMain } from './setup.js';

await workerMain('gpu');
