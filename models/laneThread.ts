/** A lane's thread (lanes.ts): loads the service it is started with and answers its calls until released. */
import { parentPort, workerData } from 'node:worker_threads';

import { LANE_SERVICES, type LoadedService } from './laneServices.js';
import { serializeError, type LaneCommand, type LaneReply, type LaneSetup, type ServiceName } from './lanes.js';

const port = parentPort;
if (!port) throw new Error('laneThread runs as a worker thread of a model pool');
const reply = (message: LaneReply, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

const setup = workerData as LaneSetup;
const load = LANE_SERVICES[setup.service] as (options: unknown) => Promise<LoadedService<ServiceName>>;
const service = await load(setup.options).catch((error: unknown) => {
  reply({ type: 'failed', error: serializeError(error) });
  return null;
});

if (service) {
  reply({ type: 'ready' });
  port.on('message', (command: LaneCommand) => {
    if (command.type === 'release') {
      void service.release().finally(() => port.close());
      return;
    }
    const { id, payload } = command;
    service
      .call(payload as never, (progress) => reply({ type: 'progress', id, progress }))
      .then(
        ({ result, transfer }) => reply({ type: 'done', id, result }, transfer),
        (error: unknown) => reply({ type: 'error', id, error: serializeError(error) }),
      );
  });
}
