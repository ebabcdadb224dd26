/**
 * One stand-in GPU worker process for the fan-out benchmark: the plugin's GPU queue, one activity
 * at a time as a real GPU worker, stand-in activities of the durations in STAND_IN_DURATIONS
 * (JSON). Prints "ready" once it polls.
 */
import { NativeConnection, Worker } from '@temporalio/worker';

import { activitiesOf, TASK_QUEUES } from '../../contract/workers.js';
import { standInActivities, type StandInDurations } from './standInActivities.js';

const durations = JSON.parse(process.env['STAND_IN_DURATIONS'] ?? '{}') as StandInDurations;
const connection = await NativeConnection.connect({ address: process.env['TEMPORAL_ADDRESS'] ?? 'localhost:7233' });
const worker = await Worker.create({
  connection,
  taskQueue: TASK_QUEUES.gpu,
  activities: activitiesOf('gpu', standInActivities(durations)),
  maxConcurrentActivityTaskExecutions: 1,
});
const running = worker.run();
process.stdout.write('ready\n');
await running;
await connection.close();
